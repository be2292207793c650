"""``--threads``: cap the CPU threads of torch and of numpy's BLAS for one command, then restore them.

torch's intra-op pool (``torch.set_num_threads``) runs the training step and the TSQR leaf QRs; numpy's
OpenBLAS/MKL pool runs the float64 Gram products and ``eigvalsh`` of the spectral analysis
(docs/metrics.md §8.3). :func:`thread_limit` sets both — the BLAS pool through ``threadpoolctl``, which
finds the pools actually loaded in the process — and restores the previous values on exit. One process per
core-sized group is still the fastest layout on a shared machine (docs/performance.md).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from collapse_lab.errors import UserError

__all__ = ["thread_limit"]


@contextmanager
def thread_limit(threads: Optional[int], option: str = "--threads") -> Iterator[None]:
    """Within the block, torch and the BLAS libraries use at most ``threads`` threads (None: unchanged).

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with thread_limit(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UserError(f"{option} must be a whole number of at least 1, got {threads!r}")
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)
