"""Same-shape random baselines: the expected metric of an iid Gaussian matrix of the analysed shape.

Collapse metrics depend on the aspect ratio (Marchenko–Pastur): even an iid D×K Gaussian has IA well below K
unless D ≫ K (``docs/metrics.md`` §1.5, §7.5), so every value is reported next to the same-shape expectation and
the ratio to it.

The Monte-Carlo draws are exact and cheap at any row count: for X ∈ ℝ^{n×d} with iid N(0, 1) entries,
XᵀX ~ Wishart(n, I_d), and the nonzero σ² of X are the eigenvalues of Wishart(max(n, d), I_min(n, d)).
Centering removes one degree of freedom: the centered scatter is Wishart(n − 1, I_d) (the centering
projector has rank n − 1). ``scipy.stats.wishart`` samples by the Bartlett decomposition in O(d²) per draw,
independent of n, so a 45M-row baseline costs what a 4 096-row one does.

The Gaussian is scaled to the analysed matrix's energy, entry variance s² = ‖A‖_F² / (n_eff·d): scale-free
metrics are unaffected, and the scale-dependent ones (knowledge abundance, σ_max, σ_min) are compared with an
isotropic matrix of the same Frobenius norm.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Dict, Mapping, Tuple

import numpy as np

from collapse_lab.spectral.accumulator import attainable_rank

__all__ = ["gaussian_spectra", "gaussian_baseline", "DEFAULT_DRAWS", "DEFAULT_SEED"]

DEFAULT_DRAWS = 10
DEFAULT_SEED = 0


@functools.lru_cache(maxsize=512)
def gaussian_spectra(rows: int, cols: int, centered: bool = False, draws: int = DEFAULT_DRAWS,
                     seed: int = DEFAULT_SEED) -> Tuple[np.ndarray, ...]:
    """Singular values (descending) of ``draws`` iid N(0, 1) matrices of shape rows×cols, seeded and cached.

    Each array has the attainable-rank many entries (min(n, d), or min(n − 1, d) centered).

    Example:
        >>> s = gaussian_spectra(1000, 4, draws=3)
        >>> len(s), s[0].shape
        (3, (4,))
        >>> bool(abs(s[0].mean() / math.sqrt(1000) - 1) < 0.1)  # σ ≈ √n for n ≫ d
        True
    """
    from scipy.stats import wishart

    m = attainable_rank(rows, cols, centered)
    if m == 0:
        return tuple(np.zeros(0) for _ in range(draws))
    n_eff = rows - int(centered)
    df, dim = max(n_eff, cols), min(n_eff, cols)
    rng = np.random.default_rng([seed, rows, cols, int(centered)])
    w = wishart(df=df, scale=np.eye(dim)).rvs(size=draws, random_state=rng)  # Bartlett: O(dim²) per draw
    w = np.asarray(w, dtype=np.float64).reshape(draws, dim, dim)
    lam = np.linalg.eigvalsh(w)[:, ::-1]  # (draws, dim) descending
    out = []
    for row in np.sqrt(np.clip(lam, 0.0, None))[:, :m]:
        s = np.ascontiguousarray(row)
        s.setflags(write=False)
        out.append(s)
    return tuple(out)


def gaussian_baseline(metrics: Mapping[str, Callable[[np.ndarray], float]], rows: int, cols: int,
                      centered: bool = False, energy: float = 1.0, draws: int = DEFAULT_DRAWS,
                      seed: int = DEFAULT_SEED, frobenius: float | None = None) -> Dict[str, float]:
    """Mean of each metric over same-shape Gaussian draws of matching energy.

    Args:
        metrics: name → function of a σ vector.
        rows, cols: the analysed shape (rows that entered the spectrum).
        centered: whether the analysed spectrum was centered.
        energy: ‖A‖_F² of the analysed matrix (its Σσ²); the Gaussian entries get variance
            energy/(n_eff·d) so that E‖X‖_F² matches.
        draws, seed: Monte-Carlo size and seed.
        frobenius: ‖A‖_F instead of ``energy`` (for matrices whose Σσ² overflows float64, entries above ~1e154).

    Example:
        >>> from collapse_lab.spectral.functional import information_abundance
        >>> b = gaussian_baseline({"ia": information_abundance}, 1000, 16, draws=200)
        >>> bool(abs(b["ia"] - 14.36) < 0.05)  # 400 direct SVDs: 14.36 ± 0.01 (docs/metrics.md §1.5, 20 draws: 14.30)
        True
    """
    m = attainable_rank(rows, cols, centered)
    if m == 0:
        return {name: float("nan") for name in metrics}
    norm = math.sqrt(energy) if frobenius is None else float(frobenius)
    scale = norm / math.sqrt((rows - int(centered)) * cols) if norm > 0 else 1.0
    spectra = [s * scale for s in gaussian_spectra(int(rows), int(cols), bool(centered), int(draws), int(seed))]
    return {name: float(np.mean([fn(s) for s in spectra])) for name, fn in metrics.items()}
