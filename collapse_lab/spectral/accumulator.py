"""Singular values of tall matrices by streaming row chunks, in float64 (``docs/metrics.md`` §8).

Two backends share one interface (``update(chunk)``, ``merge(other)``, ``spectrum()``):

* :class:`GramAccumulator` (``gram64``, the default): G = Σ_chunks XᵀX accumulated in float64, each chunk cast
  to float64 and multiplied with numpy (OpenBLAS forms ``a.T @ a`` more accurately than torch/MKL,
  ``docs/performance.md`` §5), then λ = ``eigvalsh(G)`` clipped at 0 and σ = √λ. Cost ≈ 2NK² flops and K×K memory.
  It resolves σ_k/σ_1 down to about √(K·u) ≈ 1e-7 (u = 2⁻⁵³): the **resolution floor** it reports.
  A float32 Gram (floor ≈ 3e-4) is never formed.
* :class:`TSQRAccumulator` (``tsqr``, exact mode): a QR per chunk in float64 (leaf blocks batched through
  ``torch.linalg.qr``), the R factors stacked and re-factorised, then ``svd(R)``. Backward stable like a
  direct SVD: the floor is numpy's ``matrix_rank`` tolerance max(n, d)·eps·σ_1.

Centering uses Chan et al.'s pairwise merge (never G − nμμᵀ): for chunks a, b with means μ_a, μ_b and
scatter matrices M_a, M_b,

.. math:: M = M_a + M_b + \\delta\\delta^T n_a n_b/(n_a + n_b), \\quad \\delta = \\mu_b - \\mu_a

and, for TSQR, its square-root form R = qr([R_a; R_b; √(n_a n_b/n)·δᵀ]). Rows with a NaN/Inf are dropped and
counted (detected cheaply: a non-finite row makes the chunk statistic non-finite). Optional row weights
scale rows (A → diag(w)A, e.g. w = √count for frequency weighting); rows of weight 0 are excluded and counted.

References: Chan, Golub & LeVeque, "Algorithms for computing the sample variance", 1983; Demmel et al.,
"Communication-optimal parallel and sequential QR and LU factorizations" (TSQR), 2012.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

from collapse_lab.errors import UserError

__all__ = [
    "FloatOverflow",
    "Spectrum",
    "GramAccumulator",
    "TSQRAccumulator",
    "default_chunk_rows",
    "attainable_rank",
]

U64 = np.finfo(np.float64).eps / 2  # unit round-off of float64


class FloatOverflow(UserError):
    """The float64 Gram/R overflowed: the matrix holds values above ~1e154 (analyse it scaled)."""


@dataclass(frozen=True)
class Spectrum:
    """Singular values of one matrix and how they were obtained."""

    sigma: np.ndarray  # (m,) float64, descending, m = attainable rank
    rows: int  # rows that entered (finite, positive weight)
    cols: int
    centered: bool
    method: str  # "gram64" | "tsqr"
    resolution_floor: float  # σ at or below this are not resolved by the backend
    nonfinite_rows: int = 0
    excluded_rows: int = 0  # rows of weight 0 (e.g. ids never seen in training)
    storage_floor: float = float("nan")  # u_storage·‖A‖_F/√K: below it the stored values say nothing

    @property
    def attainable_rank(self) -> int:
        """min(n, d) uncentered, min(n − 1, d) centered (docs/metrics.md §4)."""
        return attainable_rank(self.rows, self.cols, self.centered)


def attainable_rank(rows: int, cols: int, centered: bool) -> int:
    """The number of singular values a rows×cols matrix can have (one less row after centering)."""
    return max(0, min(rows - int(centered), cols)) if rows > 0 else 0


def default_chunk_rows(cols: int) -> int:
    """Rows per chunk: about 8 MiB of float64 per chunk (cache-friendly GEMMs), between 1 024 and 65 536."""
    return int(min(65536, max(1024, (1 << 20) // max(cols, 1))))


def _to_f64(chunk: Any, scratch: np.ndarray | None = None) -> np.ndarray:
    """A row chunk (numpy/memmap/torch, any float dtype incl. bf16) as a C-contiguous float64 array.

    With ``scratch`` (a float64 (R, K) buffer) a float16/float32 numpy chunk of at most R rows is widened into its
    first rows instead of into fresh memory: the same values, without faulting in 8 MiB of new pages per chunk
    (about a third of a streamed K = 16 Gram's time, docs/performance.md §5). The result is then a view of
    ``scratch``, valid until the next call with it.
    """
    if hasattr(chunk, "detach"):  # torch tensor
        import torch

        return chunk.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy()
    if scratch is not None and isinstance(chunk, np.ndarray) and chunk.dtype in (np.float32, np.float16) and \
            chunk.ndim == 2 and chunk.shape[1] == scratch.shape[1] and chunk.shape[0] <= scratch.shape[0]:
        out = scratch[: chunk.shape[0]]
        np.copyto(out, chunk)  # float32/16 -> float64 is exact
        return out
    return np.ascontiguousarray(chunk, dtype=np.float64)


def _apply_weights(x: np.ndarray, weights: np.ndarray | None) -> Tuple[np.ndarray, int]:
    """Drop rows of weight <= 0 and scale the others: diag(w)·X. Returns (rows, number excluded)."""
    if weights is None:
        return x, 0
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (x.shape[0],):
        raise UserError(f"row weights must have shape ({x.shape[0]},), got {w.shape}")
    keep = np.isfinite(w) & (w > 0)
    excluded = int(x.shape[0] - np.count_nonzero(keep))
    if excluded:
        x, w = x[keep], w[keep]
    return x * w[:, None], excluded


def _finite_rows(x: np.ndarray) -> Tuple[np.ndarray, int]:
    bad = ~np.isfinite(x).all(axis=1)
    n_bad = int(np.count_nonzero(bad))
    return (x[~bad], n_bad) if n_bad else (x, 0)


class _Accumulator(ABC):
    """Shared bookkeeping: rows, mean, counts of dropped rows; subclasses hold the K×K factor."""

    method = ""

    def __init__(self, dim: int, center: bool = False) -> None:
        if dim < 1:
            raise UserError(f"a matrix needs at least one column, got {dim}")
        self.dim, self.center = int(dim), bool(center)
        self.n = 0
        self.mean = np.zeros(self.dim)  # (K,) running column mean (centered mode only)
        self.nonfinite_rows = 0
        self.excluded_rows = 0
        self.raw_sumsq = 0.0  # Σ x² of the (weighted) rows before centering: the storage floor scales with it
        self.max_abs = 0.0  # largest |x| of the finite rows that entered (decides whether to analyse scaled)
        self._scratch: np.ndarray | None = None  # reused float64 buffer for narrow-float chunks (_to_f64)

    def update(self, chunk: Any, weights: np.ndarray | None = None) -> _Accumulator:
        """Add a (rows, K) chunk; ``weights`` (rows,) scale rows, weight-0 rows are excluded."""
        rows = int(getattr(chunk, "shape", (0,))[0]) if getattr(chunk, "ndim", 0) == 2 else 0
        if rows and getattr(chunk, "dtype", None) in (np.float32, np.float16) and chunk.shape[1] == self.dim and \
                (self._scratch is None or self._scratch.shape[0] < rows):
            self._scratch = np.empty((rows, self.dim))
        x = _to_f64(chunk, self._scratch)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise UserError(f"expected a chunk of shape (rows, {self.dim}), got {x.shape}")
        x, excluded = _apply_weights(x, weights)
        self.excluded_rows += excluded
        if x.shape[0] == 0:
            return self
        stats = self._chunk_stats(x)
        if stats is None:  # a non-finite statistic: find and drop the offending rows, once
            x, n_bad = _finite_rows(x)
            self.nonfinite_rows += n_bad
            if x.shape[0] == 0:
                return self
            stats = self._chunk_stats(x)
            if stats is None:
                raise FloatOverflow("float64 overflow while accumulating the spectrum (values above ~1e154)")
        self._merge_stats(x.shape[0], *stats)
        with np.errstate(over="ignore"):  # an infinite energy sends the analysis to the scaled retry
            self.raw_sumsq += float(np.einsum("ij,ij->", x, x))
        self.max_abs = max(self.max_abs, float(x.max()), -float(x.min()))  # = max |x| (x is finite), no copy
        return self

    def merge(self, other: _Accumulator) -> _Accumulator:
        """Merge another accumulator of the same kind (Chan's pairwise formula when centered)."""
        if type(other) is not type(self) or other.dim != self.dim or other.center != self.center:
            raise UserError("can only merge accumulators of the same kind, width and centering")
        self.nonfinite_rows += other.nonfinite_rows
        self.excluded_rows += other.excluded_rows
        self.raw_sumsq += other.raw_sumsq
        self.max_abs = max(self.max_abs, other.max_abs)
        if other.n:
            self._merge_stats(other.n, other.mean.copy(), self._factor(other))
        return self

    def _merge_stats(self, n_b: int, mean_b: np.ndarray, factor_b: np.ndarray) -> None:
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self.mean  # (K,)
        self._combine(factor_b, delta * math.sqrt(n_a * n_b / n) if (self.center and n_a) else None)
        self.mean = self.mean + delta * (n_b / n)
        self.n = n

    def _chunk_stats(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray] | None:
        """(chunk mean, chunk factor) or None when a row is non-finite (or the factor overflows)."""
        with np.errstate(over="ignore", invalid="ignore"):  # detected below; no RuntimeWarning on the console
            return self._chunk_stats_unchecked(x)

    def _chunk_stats_unchecked(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray] | None:
        if self.center:
            mean = x.mean(axis=0)
            if not np.isfinite(mean).all():
                return None
            x = x - mean
        else:
            mean = np.zeros(self.dim)
        factor = self._chunk_factor(x)
        return (mean, factor) if np.isfinite(factor).all() else None

    # subclass hooks
    @abstractmethod
    def _chunk_factor(self, x: np.ndarray) -> np.ndarray:
        """The K×K factor (Gram or R) of one (centred) chunk."""

    @abstractmethod
    def _combine(self, factor_b: np.ndarray, cross: np.ndarray | None) -> None:
        """Fold a chunk factor (and the Chan cross term ``cross``, if any) into the running factor."""

    @abstractmethod
    def _factor(self, acc: _Accumulator) -> np.ndarray:
        """The running factor of another accumulator of this kind."""

    @abstractmethod
    def _sigma(self) -> Tuple[np.ndarray, float]:
        """(σ descending, resolution floor) from the running factor."""

    def spectrum(self, storage_roundoff: float = float("nan")) -> Spectrum:
        """The singular values (descending, attainable rank many) with their resolution and storage floors.

        Args:
            storage_roundoff: unit round-off of the stored values (2⁻²⁴ for float32, 2⁻⁸ for bf16).
        """
        m = attainable_rank(self.n, self.dim, self.center)
        if m == 0:
            sigma, floor = np.zeros(0), 0.0
        else:
            sigma, floor = self._sigma()
            sigma = sigma[:m]
        # storage rounding is relative to the stored (raw, uncentered) values: use the raw ‖A‖_F, not Σσ² of the
        # centered spectrum (a large common mean would otherwise hide the floor)
        energy = math.sqrt(self.raw_sumsq)
        storage = storage_roundoff * energy / math.sqrt(max(m, 1))
        return Spectrum(sigma, self.n, self.dim, self.center, self.method, floor, self.nonfinite_rows,
                        self.excluded_rows, storage)


class GramAccumulator(_Accumulator):
    """Streaming float64 Gram G = XᵀX (uncentered) or scatter M = (X − 1μᵀ)ᵀ(X − 1μᵀ) (centered, Chan-merged).

    Example:
        >>> acc = GramAccumulator(2)
        >>> _ = acc.update(np.array([[1., 0.], [0., 1.]])).update(np.array([[1., 1.]]))
        >>> acc.gram.tolist()
        [[2.0, 1.0], [1.0, 2.0]]
        >>> np.round(acc.spectrum().sigma ** 2, 12).tolist()
        [3.0, 1.0]
    """

    method = "gram64"

    def __init__(self, dim: int, center: bool = False) -> None:
        super().__init__(dim, center)
        self.gram = np.zeros((self.dim, self.dim))  # (K, K) float64

    def _chunk_factor(self, x: np.ndarray) -> np.ndarray:
        return x.T @ x  # (K, K) float64 GEMM in numpy/OpenBLAS

    def _combine(self, factor_b: np.ndarray, cross: np.ndarray | None) -> None:
        self.gram += factor_b
        if cross is not None:
            self.gram += np.outer(cross, cross)

    def _factor(self, acc: _Accumulator) -> np.ndarray:
        return acc.gram  # type: ignore[attr-defined]

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """The (centered) covariance M/(n − ddof), or the second moment G/(n − ddof) when uncentered."""
        if self.n - ddof <= 0:
            raise UserError(f"a covariance with ddof={ddof} needs more than {ddof} rows, got {self.n}")
        return self.gram / (self.n - ddof)

    def _sigma(self) -> Tuple[np.ndarray, float]:
        lam = np.linalg.eigvalsh(self.gram)[::-1]  # descending
        sigma = np.sqrt(np.clip(lam, 0.0, None))
        return sigma, float(math.sqrt(self.dim * U64) * sigma[0])


class TSQRAccumulator(_Accumulator):
    """Streaming float64 TSQR: keeps the K×K triangular factor R with RᵀR = G (or the centered scatter).

    Example:
        >>> acc = TSQRAccumulator(2)
        >>> _ = acc.update(np.array([[1., 0.], [0., 1.]])).update(np.array([[1., 1.]]))
        >>> np.round(acc.spectrum().sigma ** 2, 12).tolist()
        [3.0, 1.0]
    """

    method = "tsqr"
    leaf_rows = 4096  # rows per leaf QR inside a chunk (batched; fastest of 256..16384 on 2 cores)

    def __init__(self, dim: int, center: bool = False) -> None:
        super().__init__(dim, center)
        self.r = np.zeros((0, self.dim))  # (≤K, K)

    def _qr_r(self, x: np.ndarray) -> np.ndarray:
        """R of a tall float64 block: batched leaf QRs (torch) for long blocks, then one QR of the stacked R's."""
        n, d = x.shape
        leaf = max(self.leaf_rows, 2 * d)
        b = n // leaf
        if b > 1:  # one batched call for the leaves: much faster than a single tall Householder QR here
            import torch

            leaves = torch.from_numpy(x[: b * leaf]).reshape(b, leaf, d)  # (b, leaf, K)
            r_leaves = torch.linalg.qr(leaves, mode="r")[1].reshape(b * d, d).numpy()
            x = np.concatenate([r_leaves, x[b * leaf:]])
        return np.linalg.qr(x, mode="r")[: min(x.shape[0], d)]

    def _chunk_factor(self, x: np.ndarray) -> np.ndarray:
        return self._qr_r(x)

    def _combine(self, factor_b: np.ndarray, cross: np.ndarray | None) -> None:
        if self.r.shape[0] == 0 and cross is None:
            self.r = factor_b.copy()
            return
        blocks = [self.r, factor_b] + ([cross[None, :]] if cross is not None else [])
        self.r = self._qr_r(np.concatenate(blocks))

    def _factor(self, acc: _Accumulator) -> np.ndarray:
        return acc.r  # type: ignore[attr-defined]

    @property
    def gram(self) -> np.ndarray:
        """RᵀR, the Gram (or centered scatter) matrix."""
        return self.r.T @ self.r

    def _sigma(self) -> Tuple[np.ndarray, float]:
        sigma = np.linalg.svd(self.r, compute_uv=False)
        sigma = np.concatenate([sigma, np.zeros(self.dim - sigma.size)])
        return sigma, float(max(self.n, self.dim) * np.finfo(np.float64).eps * sigma[0])
