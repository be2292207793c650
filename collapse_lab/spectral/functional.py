"""Spectral collapse metrics as pure functions of a singular-value vector.

Every "effective dimension" in use is a **Hill number** (exponential Rényi entropy) of a distribution built
from the singular values σ_1 ≥ … ≥ σ_m ≥ 0 of a matrix A (``docs/metrics.md`` §3):

* the σ-family, power 1: p_k = σ_k / Σ_j σ_j (Roy–Vetterli effective rank, RankMe, information abundance);
* the σ²-family, power 2: q_k = σ_k² / Σ_j σ_j² (covariance eigenvalues, participation ratio, stable rank).

.. math::  D_q(w) = \\Big(\\sum_k w_k^q\\Big)^{1/(1-q)},\\quad D_0 = \\#\\{w_k > 0\\},\\quad D_1 = e^{H(w)},\\quad
   D_\\infty = 1/\\max_k w_k

so one core, :func:`hill`, serves all named presets:

=========================== ======= ===== =============================================
metric                      power   order reference
=========================== ======= ===== =============================================
information_abundance       1       ∞     Guo et al., ICML 2024 (arXiv 2310.04400)
effective_rank              1       1     Roy & Vetterli, EUSIPCO 2007
nuclear_ratio               1       2     (Σσ)²/Σσ²
covariance_effective_rank   2       1     effective rank of the covariance eigenvalues
participation_ratio         2       2     Gao et al. 2017; Recanatesi et al. 2019
stable_rank                 2       ∞     Rudelson & Vershynin 2007
=========================== ======= ===== =============================================

plus :func:`rankme` (Garrido et al., ICML 2023; ε inside the entropy), :func:`numerical_rank`,
:func:`knowledge_abundance` (KDEF, arXiv 2411.16122, Eqs. 3–4) and :func:`alpha_req` (Agrawal et al.,
NeurIPS 2022).

Conventions (``docs/metrics.md`` §4): a zero spectrum gives 0 for every Hill number and for RankMe (never NaN),
NaN for α-ReQ; 0·ln 0 = 0 (zeros are masked, no ε inside the log except in RankMe); spectra are rescaled by
their maximum before powers are taken, so tiny (1e-200) or huge (1e200) values neither underflow nor
overflow. The input is a spectrum, not a matrix: how it was computed (centering, weighting, backend) is the
business of :mod:`collapse_lab.spectral.accumulator`.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from scipy.special import entr

from collapse_lab.errors import UserError

__all__ = [
    "hill",
    "information_abundance",
    "effective_rank",
    "covariance_effective_rank",
    "nuclear_ratio",
    "participation_ratio",
    "stable_rank",
    "rankme",
    "numerical_rank",
    "knowledge_abundance",
    "KA_THRESHOLDS",
    "DEFAULT_KA_TAU",
    "mp_bulk_edge",
    "ka_threshold",
    "threshold_label",
    "check_tau",
    "alpha_req",
    "alpha_req_reason",
    "ALPHA_MIN_EIGENVALUES",
    "as_spectrum",
]

#: kinds of knowledge-abundance threshold: the paper's absolute τ, the Marchenko–Pastur bulk edge of a same-shape
#: Gaussian of equal Frobenius norm (× τ), and a share τ of σ_max
KA_THRESHOLDS = ("abs", "mp", "rel")
#: τ of each kind when none is given: KDEF's τ = 4; the bulk edge itself; the ε-rank cut σ > 0.1·σ_max
DEFAULT_KA_TAU = {"abs": 4.0, "mp": 1.0, "rel": 0.1}


def as_spectrum(sigma: Sequence[float]) -> np.ndarray:
    """Validate a singular-value vector and return it as float64, sorted descending.

    Raises:
        UserError: if it is not 1-D, has a non-finite or a negative entry.
    """
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim != 1:
        raise UserError(f"a spectrum must be a 1-D vector of singular values, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise UserError("a spectrum must be finite; drop non-finite rows of the matrix first")
    if (s < 0).any():
        raise UserError(f"singular values must be >= 0, got min {s.min():g}")
    return np.sort(s)[::-1]


def _rescaled(sigma: Sequence[float], power: int) -> np.ndarray:
    """The positive σ as (σ_k/σ_1)^power, σ_1 = max (empty for a zero spectrum); rescaling first avoids under- and
    overflow and keeps the metrics exactly scale-invariant."""
    if power not in (1, 2):
        raise UserError(f"power must be 1 (singular values) or 2 (eigenvalues), got {power!r}")
    s = as_spectrum(sigma)
    if s.size == 0 or s[0] == 0.0:
        return s[:0]
    return (s[s > 0] / s[0]) ** power


def hill(sigma: Sequence[float], order: float, power: int = 1) -> float:
    """Hill number of order ``order`` of the σ^power distribution.

    .. math:: D_q = (\\sum_k w_k^q)^{1/(1-q)}, \\quad w_k = \\sigma_k^{p} / \\sum_j \\sigma_j^{p}

    with the limits D_0 = #{w > 0}, D_1 = exp(−Σ w ln w), D_∞ = 1/max w. Hill numbers do not increase with
    the order, and the σ²-family is never above the σ-family (``docs/metrics.md`` §3.2).

    Args:
        sigma: singular values (any order).
        order: q ≥ 0 (``math.inf`` allowed).
        power: 1 for the σ-family, 2 for the σ²(eigenvalue)-family.

    Returns:
        D_q, or 0.0 for a zero (or empty) spectrum.

    Example:
        >>> round(hill([2, 1, 1, 0], 1, power=1), 6)  # 2 ** 1.5
        2.828427
        >>> hill([2, 1, 1, 0], math.inf, power=2)
        1.5
        >>> hill([0, 0], 2)
        0.0
    """
    if order < 0 or math.isnan(order):
        raise UserError(f"the Hill order must be >= 0, got {order!r}")
    r = _rescaled(sigma, power)  # max(r) = 1
    if r.size == 0:
        return 0.0
    if order == 0:
        return float(r.size)
    if order == 1:
        return float(np.exp(entr(r / r.sum()).sum()))  # entr(p) = −p ln p
    if math.isinf(order):
        return float(r.sum())  # 1/max(w) = Σr / max(r)
    if order == 2:
        return float(r.sum() ** 2 / np.sum(r * r))
    return float(np.sum((r / r.sum()) ** order) ** (1.0 / (1.0 - order)))


def information_abundance(sigma: Sequence[float]) -> float:
    """Information abundance IA = Σσ_k / σ_max = ‖A‖_* / ‖A‖_2 (Guo et al., arXiv 2310.04400, Def. 1).

    The Hill number of order ∞ of the σ-distribution. Guo et al. apply it to the raw (uncentered) per-field
    embedding table E_i ∈ ℝ^{D_i×K}. Range [1, rank]; 0 for a zero matrix.

    Example:
        >>> information_abundance([4, 2, 1, 1, 0])
        2.0
        >>> round(information_abundance([3 ** 0.5, 1]), 6)  # per-field slicing vector, docs/metrics.md §5
        1.57735
    """
    return hill(sigma, math.inf, power=1)


def effective_rank(sigma: Sequence[float]) -> float:
    """Effective rank erank = exp(H(p)), p_k = σ_k/Σσ (Roy & Vetterli, EUSIPCO 2007).

    The Hill number of order 1 of the σ-distribution (RankMe without ε). Range [1, rank]; 0 for a zero
    matrix.

    Example:
        >>> round(effective_rank([3, 2, 1, 0]), 6)
        2.749459
        >>> effective_rank([1, 1, 1, 1])
        4.0
    """
    return hill(sigma, 1, power=1)


def covariance_effective_rank(sigma: Sequence[float]) -> float:
    """Effective rank of the eigenvalues σ_k² (erank_e = exp(H(q)), q_k = σ_k²/Σσ²).

    Roy–Vetterli applied to covariance eigenvalues, the σ²-family Hill number of order 1
    (``docs/metrics.md`` §3.1). Never above :func:`effective_rank`.

    Example:
        >>> round(covariance_effective_rank([2, 1, 1, 0]), 6)  # 13.5 ** (1/3)
        2.381102
    """
    return hill(sigma, 1, power=2)


def nuclear_ratio(sigma: Sequence[float]) -> float:
    """Nuclear-norm ratio (‖A‖_*/‖A‖_F)² = (Σσ)²/Σσ², the σ-family Hill number of order 2.

    Example:
        >>> round(nuclear_ratio([2, 1, 1, 0]), 6)  # 8/3
        2.666667
    """
    return hill(sigma, 2, power=1)


def participation_ratio(sigma: Sequence[float]) -> float:
    """Participation ratio PR = (Σσ²)²/Σσ⁴ = tr(G)²/‖G‖_F², G = AᵀA (Gao et al. 2017; Recanatesi et al. 2019).

    The σ²-family Hill number of order 2; usually applied to the centered covariance. An isotropic N×d
    Gaussian gives PR ≈ d/(1 + d/N).

    Example:
        >>> participation_ratio([3, 2, 1, 0])  # 196/98
        2.0
    """
    return hill(sigma, 2, power=2)


def stable_rank(sigma: Sequence[float]) -> float:
    """Stable rank srank = ‖A‖_F²/‖A‖_2² = Σσ²/σ_1² (Rudelson & Vershynin 2007), σ²-family order ∞.

    On centered features this is NESum (He & Ozay 2022).

    Example:
        >>> round(stable_rank([3, 2, 1, 0]), 6)  # 14/9
        1.555556
    """
    return hill(sigma, math.inf, power=2)


def rankme(sigma: Sequence[float], eps: float = 1e-7, power: int = 1) -> float:
    """RankMe = exp(−Σ p̃_k ln p̃_k), p̃_k = σ_k^power/Σσ^power + ε (Garrido et al., ICML 2023, arXiv 2210.02885).

    ε is added to **every** p_k, zeros included, exactly as the implementations citing the paper do; it biases
    the score upward (+20% at d = 2048 for ε = 1e-5, ``docs/metrics.md`` §5). Garrido's definition is power 1 on
    the uncentered embeddings; ``reptrix`` applies it to centered covariance eigenvalues (power 2 on the
    centered σ). A zero spectrum gives 0 by convention (naive code gives NaN).

    Args:
        sigma: singular values.
        eps: the additive ε (1e-7 Garrido / reptrix, 1e-5 stable-pretraining).
        power: 1 (σ, Garrido) or 2 (eigenvalues, reptrix).

    Example:
        >>> round(rankme([1, 1, 1, 1]), 8)
        4.00000062
        >>> round(rankme([4, 0, 0, 0], eps=1e-5), 8)
        1.00033544
        >>> rankme([0, 0, 0])
        0.0
    """
    if not eps >= 0:
        raise UserError(f"RankMe eps must be >= 0, got {eps!r}")
    s = as_spectrum(sigma)
    r = _rescaled(s, power)
    if r.size == 0:
        return 0.0
    p = np.concatenate([r / r.sum(), np.zeros(s.size - r.size)]) + eps  # the zeros get ε too
    return float(np.exp(-np.sum(p * np.log(p))))


def numerical_rank(sigma: Sequence[float], shape: Tuple[int, int] | None = None, rtol: float | None = None,
                   atol: float = 0.0) -> int:
    """Numerical rank #{σ_k > max(atol, rtol·σ_1)}.

    The default ``rtol = max(n, d)·eps(float64)`` is numpy's ``matrix_rank`` rule (``shape`` = (n, d) of the
    matrix; without it, the length of ``sigma`` stands in for max(n, d)). Pass the spectrum's resolution floor
    as ``atol`` to count only σ that the backend actually resolved (``docs/metrics.md`` §4, §8.2).

    Example:
        >>> numerical_rank([2, 1, 1, 0])
        3
        >>> numerical_rank([13.693, 9.97e-16, 1e-17, 0], shape=(4, 4))
        1
        >>> numerical_rank([1.0, 1e-3], atol=1e-2)
        1
    """
    s = as_spectrum(sigma)
    if s.size == 0 or s[0] == 0:
        return 0
    if rtol is None:
        rtol = (max(shape) if shape is not None else s.size) * np.finfo(np.float64).eps
    return int(np.count_nonzero(s > max(atol, rtol * s[0])))


def check_tau(tau: float) -> float:
    """The KA threshold parameter τ as a float, or a UserError: τ must be a finite number >= 0 (NaN would compare
    false everywhere and count nothing; ∞ would count nothing either; KDEF, arXiv 2411.16122 Eqs. 3–4, uses τ = 4).

    Example:
        >>> check_tau(4)
        4.0
    """
    try:
        value = float(tau)
    except (TypeError, ValueError):
        raise UserError(f"tau must be a number, got {tau!r}") from None
    if not math.isfinite(value):
        raise UserError(f"tau must be a finite number, got {tau!r}")
    if value < 0:
        raise UserError(f"tau must be >= 0, got {tau!r}")
    return value


def mp_bulk_edge(rows: int, cols: int, energy: float) -> float:
    """Largest singular value of the random bulk: s(√m + √n) for an m×n matrix of iid entries of variance s².

    The Marchenko–Pastur law (Marchenko & Pastur 1967) puts the squared singular values of an m×n matrix with
    iid zero-mean entries of variance s² on [s²(√m − √n)², s²(√m + √n)²]; the largest one converges to the
    upper edge (Geman 1980; Bai & Yin 1993), with Tracy–Widom fluctuations of relative size O(min(m, n)^(−2/3)).
    Here the Gaussian has the analysed matrix's Frobenius norm, s² = ‖A‖_F²/(mn) = Σσ²/(mn), so a singular
    value above the edge is a direction that an isotropic matrix of the same energy would not have.

    Args:
        rows, cols: the matrix shape m × n.
        energy: ‖A‖_F² = Σσ_k².

    Example:
        >>> mp_bulk_edge(400, 100, energy=400 * 100 * 4.0)  # s = 2: 2·(20 + 10)
        60.0
        >>> mp_bulk_edge(3, 3, energy=0.0)
        0.0
    """
    if rows < 1 or cols < 1:
        raise UserError(f"the bulk edge needs a matrix shape of at least 1x1, got {rows}x{cols}")
    if not energy >= 0:
        raise UserError(f"energy must be >= 0, got {energy!r}")
    return math.sqrt(energy / (rows * cols)) * (math.sqrt(rows) + math.sqrt(cols))


def ka_threshold(sigma: Sequence[float], threshold: str = "abs", tau: float | None = None,
                 shape: Tuple[int, int] | None = None) -> float:
    """The absolute σ threshold of a knowledge-abundance kind.

    * ``abs`` — τ itself (KDEF, arXiv 2411.16122 Eqs. 3–4, τ = 4): not scale-invariant.
    * ``mp`` — τ × :func:`mp_bulk_edge` of a same-shape Gaussian of equal Frobenius norm: σ above it are learned
      directions (default τ = 1, the edge itself). Invariant under A → cA. Needs ``shape``.
    * ``rel`` — τ·σ_max (the ε-rank cut σ_k/σ_1 > ε; default τ = 0.1). Invariant under A → cA.

    Example:
        >>> ka_threshold([3.0, 1.0], "abs")
        4.0
        >>> ka_threshold([3.0, 1.0], "rel", 0.5)
        1.5
        >>> ka_threshold([3.0, 1.0], "mp", shape=(2, 2))  # s² = 10/4: √2.5·2√2
        4.47213595499958
    """
    if threshold not in KA_THRESHOLDS:
        raise UserError(f"unknown KA threshold {threshold!r}; valid: {', '.join(KA_THRESHOLDS)}")
    tau = DEFAULT_KA_TAU[threshold] if tau is None else check_tau(tau)
    if threshold == "abs":
        return tau
    s = as_spectrum(sigma)
    if threshold == "rel":
        return tau * (float(s[0]) if s.size else 0.0)
    if shape is None:
        raise UserError("the 'mp' threshold needs the matrix shape (rows, cols)")
    top = float(s[0]) if s.size else 0.0
    if top == 0.0:
        return 0.0
    # the edge is linear in ‖A‖_F: factor σ_max out so that Σσ² cannot overflow (σ up to ~1e308)
    return tau * top * mp_bulk_edge(int(shape[0]), int(shape[1]), float(np.sum((s / top) ** 2)))


def threshold_label(threshold: str = "abs", tau: float | None = None) -> str:
    """How a figure or table names a KA threshold.

    Example:
        >>> threshold_label("abs"), threshold_label("mp"), threshold_label("mp", 1.5), threshold_label("rel")
        ('σ > τ = 4', 'σ > MP bulk edge', 'σ > 1.5 × MP bulk edge', 'σ > 0.1·σ_max')
    """
    if threshold not in KA_THRESHOLDS:
        raise UserError(f"unknown KA threshold {threshold!r}; valid: {', '.join(KA_THRESHOLDS)}")
    tau = DEFAULT_KA_TAU[threshold] if tau is None else float(tau)
    if threshold == "abs":
        return f"σ > τ = {tau:g}"
    if threshold == "mp":
        return "σ > MP bulk edge" if tau == 1.0 else f"σ > {tau:g} × MP bulk edge"
    return f"σ > {tau:g}·σ_max"


def knowledge_abundance(sigma: Sequence[float], tau: float | None = None, zero_tol: float = 0.0,
                        threshold: str = "abs", shape: Tuple[int, int] | None = None) -> float:
    """Knowledge abundance KA(W, τ) = Σ_i I(σ_i > τ) / Σ_i I(σ_i > 0) (KDEF, Li et al., arXiv 2411.16122, Eq. 3–4).

    σ are the singular values of the weight matrix of a hidden Linear layer of one sub-network; the paper uses
    τ = 4. Both inequalities are strict. KA with the paper's absolute τ is **not** scale-invariant (it depends
    on the absolute size of σ) and is not Guo's information abundance. KA = 0 when no σ is positive
    (convention, ``docs/metrics.md`` §2). ``threshold`` swaps the absolute τ for one that fits the matrix's scale
    (:func:`ka_threshold`): the Marchenko–Pastur bulk edge of a same-shape Gaussian of equal Frobenius norm
    (``mp``, σ above the random bulk) or a share of σ_max (``rel``).

    Args:
        sigma: singular values.
        tau: the threshold parameter (None = :data:`DEFAULT_KA_TAU` of the kind: 4, 1, 0.1).
        zero_tol: σ ≤ zero_tol count as zero in the denominator (pass the resolution floor of a computed
            spectrum so round-off values are not counted as positive).
        threshold: ``abs`` | ``mp`` | ``rel`` (:data:`KA_THRESHOLDS`).
        shape: (rows, cols) of the matrix, needed by ``mp``.

    Example:
        >>> knowledge_abundance([8, 5, 4, 2])  # σ = τ is not counted
        0.5
        >>> knowledge_abundance([8, 5, 4, 2, 0])  # zeros leave the denominator
        0.5
        >>> round(knowledge_abundance([5, 4.5, 3, 0]), 6)
        0.666667
        >>> knowledge_abundance([0, 0])
        0.0
        >>> knowledge_abundance([8, 5, 4, 2], tau=0.5, threshold="rel")  # σ > 4
        0.5
    """
    if tau is not None:
        check_tau(tau)
    s = as_spectrum(sigma)
    cut = ka_threshold(s, threshold, tau, shape)
    floor = max(zero_tol, 0.0)
    positive = int(np.count_nonzero(s > floor))
    if positive == 0:
        return 0.0
    return float(np.count_nonzero(s > max(cut, floor))) / positive  # numerator ⊆ denominator: KA <= 1


#: α-ReQ is NaN below this many eigenvalues above the numerical floor (the default window starts at rank 11)
ALPHA_MIN_EIGENVALUES = 20


def alpha_req_reason(sigma: Sequence[float], ranks: Tuple[int, int] = (11, 100),
                     shape: Tuple[int, int] | None = None, atol: float = 0.0,
                     min_eigenvalues: int = ALPHA_MIN_EIGENVALUES) -> str | None:
    """Why :func:`alpha_req` is NaN for this spectrum, or ``None`` when it can be fitted.

    The fit uses only the eigenvalues whose σ :func:`numerical_rank` counts (same ``shape`` and ``atol``): a
    rank-r matrix has m − r round-off σ (≈ max(n, d)·eps·σ_1, or the backend's resolution floor) whose power
    law is that of the floating-point noise, not of the features.

    Example:
        >>> alpha_req_reason(np.r_[np.ones(10), np.full(30, 1e-17)])
        'only 10 of 40 eigenvalues above the numerical floor (needs 20)'
    """
    lo, hi = int(ranks[0]), int(ranks[1])
    if lo < 1 or hi < lo:
        raise UserError(f"ranks must satisfy 1 <= first <= last, got {ranks!r}")
    s = as_spectrum(sigma)
    kept = numerical_rank(s, shape=shape, atol=atol)
    if kept < min_eigenvalues:
        return f"only {kept} of {s.size} eigenvalues above the numerical floor (needs {min_eigenvalues})"
    if min(hi, kept) - lo + 1 < 3:
        return f"fewer than 3 of ranks {lo}..{hi} among the {kept} eigenvalues above the numerical floor"
    return None


def alpha_req(sigma: Sequence[float], power: int = 2, ranks: Tuple[int, int] = (11, 100),
              weighted: bool = True, shape: Tuple[int, int] | None = None, atol: float = 0.0,
              min_eigenvalues: int = ALPHA_MIN_EIGENVALUES) -> float:
    """α-ReQ: the power-law decay exponent α of the eigenspectrum, log λ_i = c − α·log i (Agrawal et al., NeurIPS 2022).

    λ_i = σ_i^power (power 2: σ of the centered features → covariance eigenvalues; power 1: pass eigenvalues
    directly). Only the σ above the numerical floor enter (those :func:`numerical_rank` counts with ``shape``
    and ``atol``; pass the matrix shape and the backend's resolution floor as the spectral report does). The fit
    runs over 1-based ranks ``ranks[0]..ranks[1]`` (inclusive, clipped to the kept eigenvalues); ``weighted``
    uses weights 1/i on the squared residuals (Stringer & Pachitariu, as reptrix does). Larger α = faster decay
    = more collapse; α → 0 = whitened. NaN when fewer than ``min_eigenvalues`` (20) remain or fewer than 3
    ranks fall in the window (:func:`alpha_req_reason` says which); also NaN for a zero spectrum. Meaningless
    for K = 10–64 tables.

    Example:
        >>> i = np.arange(1, 201)
        >>> round(alpha_req(1.0 / i, power=1), 6)
        1.0
        >>> round(alpha_req(i ** -1.0, power=2, weighted=False), 6)  # σ = 1/i → λ = 1/i²
        2.0
        >>> alpha_req(np.r_[1.0 / i[:10], np.full(190, 1e-17)])  # rank 10: round-off is not a power law
        nan
    """
    if power not in (1, 2):
        raise UserError(f"power must be 1 or 2, got {power!r}")
    if alpha_req_reason(sigma, ranks, shape, atol, min_eigenvalues) is not None:
        return float("nan")
    s = as_spectrum(sigma)
    lam = s[:numerical_rank(s, shape=shape, atol=atol)] ** power  # descending: the kept σ come first
    rank = np.arange(int(ranks[0]), min(int(ranks[1]), lam.size) + 1)
    y = np.log(lam[rank - 1])
    w = 1.0 / np.sqrt(rank) if weighted else None  # polyfit weights multiply residuals: sqrt(1/i)
    slope, _ = np.polyfit(np.log(rank), y, 1, w=w)
    return float(-slope)
