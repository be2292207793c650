"""Spectra of whole matrices by streaming row chunks through an accumulator (``docs/metrics.md`` §8.3).

:func:`matrix_spectrum` is the entry point the analysis uses: it picks the backend (float64 Gram by default,
TSQR with ``exact``), recomputes a Gram spectrum exactly when its tail falls below the Gram's resolution
(``auto_exact``), transposes wide matrices (n < d, same nonzero σ) and reports the storage-precision floor of
the input dtype. A matrix whose entries lie outside [2⁻⁴⁰⁰, 2⁴⁰⁰] (its float64 Gram would overflow above ~1e154
or underflow) is analysed divided by a power of two near its largest entry and its σ scaled back: exact in binary
floating point, so scale-free metrics are unchanged and KA with an absolute τ sees the true σ.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np

from collapse_lab.errors import UserError
from collapse_lab.spectral.accumulator import (
    FloatOverflow,
    GramAccumulator,
    Spectrum,
    TSQRAccumulator,
    _apply_weights,
    _finite_rows,
    _to_f64,
    attainable_rank,
    default_chunk_rows,
)

__all__ = ["matrix_spectrum", "below_gram_resolution", "unit_roundoff", "power_of_two_scale", "AUTO_EXACT_RATIO"]

#: in gram64 mode a spectrum whose σ_min/σ_1 falls below this is recomputed with TSQR (docs/metrics.md §8.3 step 5)
AUTO_EXACT_RATIO = 1e-6
AUTO_EXACT_MAX_ENTRIES = 1 << 28  # ... but only for matrices up to this size (a second pass; ~1-3 s on 2 cores)
PROGRESS_MIN_ROWS = 1_000_000  # chunk progress bars only for inputs at least this tall (unless forced)
WIDE_IN_MEMORY = 1 << 27  # n < d matrices up to this many entries (1 GiB in float64) are transposed in memory
SAFE_MIN, SAFE_MAX = 2.0 ** -400, 2.0 ** 400  # entries outside this range are analysed scaled by a power of two
MAX_GRAM_ENTRIES = 1 << 27  # the K×K float64 Gram/R is refused beyond 1 GiB (K > 11 585)


def below_gram_resolution(spec: Spectrum) -> bool:
    """Whether a ``gram64`` spectrum has σ_min/σ_1 < :data:`AUTO_EXACT_RATIO` (its tail is round-off there)."""
    s = spec.sigma
    return spec.method == "gram64" and s.size >= 2 and s[0] > 0 and s[-1] < AUTO_EXACT_RATIO * s[0]


def unit_roundoff(dtype: Any) -> float:
    """Unit round-off of a numpy or torch floating dtype (NaN for other dtypes)."""
    try:
        if hasattr(dtype, "is_floating_point"):  # torch.dtype
            import torch

            return float(torch.finfo(dtype).eps / 2) if dtype.is_floating_point else float("nan")
        return float(np.finfo(np.dtype(dtype)).eps / 2)
    except (TypeError, ValueError):
        return float("nan")


def matrix_spectrum(matrix: Any, *, center: bool = False, exact: bool = False, auto_exact: bool = True,
                    weights: np.ndarray | None = None, chunk_rows: int | None = None,
                    progress: bool | None = None, desc: str = "") -> Spectrum:
    """Singular values of a (rows, cols) matrix streamed in row chunks.

    Args:
        matrix: anything with a 2-D ``shape`` and row slicing ``matrix[a:b]`` (numpy array, memmap, torch
            tensor, :class:`collapse_lab.spectral.sources.RowSource`); only one chunk is in memory at a time.
        center: subtract the column mean (Chan merge) before taking singular values.
        exact: use TSQR instead of the float64 Gram.
        auto_exact: in Gram mode, redo the spectrum with TSQR when σ_min/σ_1 < :data:`AUTO_EXACT_RATIO` (a second
            pass, only for matrices of at most 2²⁸ entries; see :func:`below_gram_resolution`).
        weights: (rows,) row weights; rows of weight 0 are excluded.
        chunk_rows: rows per chunk (default :func:`default_chunk_rows`).
        progress: tqdm over chunks; None = only for inputs of at least 1M rows (and a terminal).
        desc: progress-bar label.

    Example:
        >>> a = np.diag([3.0, 2.0, 1.0])
        >>> matrix_spectrum(a, chunk_rows=2).sigma.round(12).tolist()
        [3.0, 2.0, 1.0]
    """
    shape = tuple(int(s) for s in matrix.shape)
    if len(shape) != 2:
        raise UserError(f"expected a 2-D matrix, got shape {shape}")
    rows, cols = shape
    if rows < 1 or cols < 1:
        raise UserError(f"a matrix needs at least one row and one column, got shape ({rows}, {cols})")
    if weights is not None and np.shape(weights) != (rows,):
        raise UserError(f"row weights must have shape ({rows},), got {np.shape(weights)}")
    roundoff = unit_roundoff(getattr(matrix, "dtype", np.float64))
    if 0 < rows < cols and rows * cols <= WIDE_IN_MEMORY:
        return _wide_spectrum(matrix, center, exact, auto_exact, weights, roundoff)
    if cols * cols > MAX_GRAM_ENTRIES:
        raise UserError(f"a {rows}x{cols} matrix is too wide for a dense spectrum: its {cols}x{cols} float64 Gram "
                        f"would need {cols * cols * 8 / 2**30:.1f} GiB (limit {MAX_GRAM_ENTRIES * 8 / 2**30:.0f} GiB)")
    chunk = int(chunk_rows or default_chunk_rows(cols))
    if chunk < 1:
        raise UserError(f"chunk_rows must be >= 1, got {chunk}")
    from tqdm.auto import tqdm

    def run(cls: type, scale: float) -> Any:
        acc = cls(cols, center)
        starts = range(0, rows, chunk)
        show = (rows >= PROGRESS_MIN_ROWS) if progress is None else progress
        for a in tqdm(starts, desc=desc or getattr(cls, "method", "max |a|"), unit="chunk", leave=False,
                      disable=None if show else True):
            block = matrix[a:a + chunk]
            acc.update(block if scale == 1.0 else _to_f64(block) * scale, None if weights is None else
                       weights[a:a + chunk])
        acc.storage_roundoff = roundoff
        return acc

    spec = _scaled_if_needed(run, TSQRAccumulator if exact else GramAccumulator)
    if not exact and auto_exact and rows * cols <= AUTO_EXACT_MAX_ENTRIES and below_gram_resolution(spec):
        spec = _scaled_if_needed(run, TSQRAccumulator)
    return spec


def power_of_two_scale(max_abs: float) -> int:
    """The exponent e with max_abs = f·2^e, 0.5 <= f < 1: dividing by 2^e (exact in binary floating point) brings
    the largest entry into [0.5, 1).

    Example:
        >>> power_of_two_scale(1e200), power_of_two_scale(0.75), power_of_two_scale(3.0)
        (665, 0, 2)
    """
    return math.frexp(max_abs)[1]


def _unscaled(spec: Spectrum, exponent: int) -> Spectrum:
    """A spectrum of A·2^−e brought back to A: σ, resolution and storage floors times 2^e (exact)."""
    with np.errstate(over="ignore"):
        sigma = np.ldexp(spec.sigma, exponent)
    if not np.isfinite(sigma).all():
        raise UserError(f"singular values beyond the float64 range (largest entry about 2^{exponent}); "
                        "rescale the matrix before analysing it")
    return dataclasses.replace(spec, sigma=sigma, resolution_floor=math.ldexp(spec.resolution_floor, exponent),
                               storage_floor=math.ldexp(spec.storage_floor, exponent))


def _scaled_if_needed(run: Callable[[type, float], Any], cls: type) -> Spectrum:
    """Run the accumulator once; if its entries lie outside [2⁻⁴⁰⁰, 2⁴⁰⁰] (their Gram would overflow or
    underflow float64, around 1e154 and 1e−154), run it again on the matrix divided by a power of two near its
    max |entry| and scale σ back (:func:`_unscaled`). Scaling by 2^−e is exact, so every scale-free metric
    (effective rank, IA, stable rank...) is unchanged and KA with an absolute τ sees the true σ."""
    try:
        acc = run(cls, 1.0)
        max_abs = acc.max_abs
    except FloatOverflow:
        acc, max_abs = None, math.inf
    if acc is not None and (max_abs == 0.0 or SAFE_MIN <= max_abs <= SAFE_MAX) and math.isfinite(acc.raw_sumsq):
        return acc.spectrum(acc.storage_roundoff)
    if not math.isfinite(max_abs):
        max_abs = run(_MaxAbs, 1.0).max_abs
    exponent = power_of_two_scale(max_abs)
    acc = run(cls, math.ldexp(1.0, -exponent))
    return _unscaled(acc.spectrum(acc.storage_roundoff), exponent)


class _MaxAbs:
    """A pass that only records the largest |entry| of the finite rows (weights applied)."""

    def __init__(self, dim: int, center: bool = False) -> None:
        self.max_abs = 0.0

    def update(self, chunk: Any, weights: np.ndarray | None = None) -> None:
        x, _ = _apply_weights(_to_f64(chunk), weights)
        x, _ = _finite_rows(x)
        if x.size:
            self.max_abs = max(self.max_abs, float(np.abs(x).max()))


def _wide_spectrum(matrix: Any, center: bool, exact: bool, auto_exact: bool, weights: np.ndarray | None,
                   roundoff: float) -> Spectrum:
    """n < d: the same nonzero σ from the n×n Gram of Aᵀ (docs/metrics.md §4), the matrix held in memory."""
    rows, cols = (int(s) for s in matrix.shape)
    x, excluded = _apply_weights(_to_f64(matrix[0:rows]), weights)
    x, n_bad = _finite_rows(x)
    n = x.shape[0]
    max_abs = float(np.abs(x).max()) if x.size else 0.0
    exponent = 0 if max_abs == 0.0 or SAFE_MIN <= max_abs <= SAFE_MAX else power_of_two_scale(max_abs)
    if exponent:
        x = np.ldexp(x, -exponent)  # exact; see _scaled_if_needed
    raw_energy = math.sqrt(float(np.einsum("ij,ij->", x, x)))  # storage floor: raw values (see spectrum())
    if center and n:
        x = x - x.mean(axis=0)  # (n, d)
    m = attainable_rank(n, cols, center)

    def run(cls: type) -> Spectrum:
        acc = cls(max(n, 1))
        if n:
            acc.update(x.T)  # (d, n): σ(Aᵀ) = σ(A)
        inner = acc.spectrum(roundoff)
        sigma = inner.sigma[:m] if n else np.zeros(0)
        return Spectrum(sigma, n, cols, center, inner.method, inner.resolution_floor, n_bad, excluded,
                        roundoff * raw_energy / math.sqrt(max(m, 1)))

    spec = run(TSQRAccumulator if exact else GramAccumulator)
    if not exact and auto_exact and below_gram_resolution(spec):
        spec = run(TSQRAccumulator)
    return _unscaled(spec, exponent) if exponent else spec
