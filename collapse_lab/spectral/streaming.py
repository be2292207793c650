"""Spectra of whole matrices by streaming row chunks through an accumulator (``docs/metrics.md`` §8.3).

:func:`matrix_spectrum` is the entry point the analysis uses: it picks the backend (float64 Gram by default,
TSQR with ``exact``), recomputes a Gram spectrum exactly when its tail falls below the Gram's resolution
(``auto_exact``), transposes wide matrices (n < d, same nonzero σ) and reports the storage-precision floor of
the input dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from collapse_lab.errors import UserError
from collapse_lab.spectral.accumulator import (
    GramAccumulator,
    Spectrum,
    TSQRAccumulator,
    _apply_weights,
    _finite_rows,
    _to_f64,
    attainable_rank,
    default_chunk_rows,
)

__all__ = ["matrix_spectrum", "below_gram_resolution", "unit_roundoff", "AUTO_EXACT_RATIO"]

#: in gram64 mode a spectrum whose σ_min/σ_1 falls below this is recomputed with TSQR (docs/metrics.md §8.3 step 5)
AUTO_EXACT_RATIO = 1e-6
AUTO_EXACT_MAX_ENTRIES = 1 << 28  # ... but only for matrices up to this size (a second pass; ~1-3 s on 2 cores)
PROGRESS_MIN_ROWS = 1_000_000  # chunk progress bars only for inputs at least this tall (unless forced)
WIDE_IN_MEMORY = 1 << 27  # n < d matrices up to this many entries (1 GiB in float64) are transposed in memory
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

    def run(cls: type) -> Spectrum:
        acc = cls(cols, center)
        starts = range(0, rows, chunk)
        show = (rows >= PROGRESS_MIN_ROWS) if progress is None else progress
        for a in tqdm(starts, desc=desc or cls.method, unit="chunk", leave=False,
                      disable=None if show else True):
            acc.update(matrix[a:a + chunk], None if weights is None else weights[a:a + chunk])
        return acc.spectrum(roundoff)

    spec = run(TSQRAccumulator if exact else GramAccumulator)
    if not exact and auto_exact and rows * cols <= AUTO_EXACT_MAX_ENTRIES and below_gram_resolution(spec):
        spec = run(TSQRAccumulator)
    return spec


def _wide_spectrum(matrix: Any, center: bool, exact: bool, auto_exact: bool, weights: np.ndarray | None,
                   roundoff: float) -> Spectrum:
    """n < d: the same nonzero σ from the n×n Gram of Aᵀ (docs/metrics.md §4), the matrix held in memory."""
    rows, cols = (int(s) for s in matrix.shape)
    x, excluded = _apply_weights(_to_f64(matrix[0:rows]), weights)
    x, n_bad = _finite_rows(x)
    n = x.shape[0]
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
    return spec
