"""Batch-dependent operations of the students, open to a multi-process step (collapse_lab.parallel).

Two operations inside a student depend on the whole batch or on the random-number stream: BatchNorm (the
mean and variance over the batch rows) and dropout (a Bernoulli mask drawn from torch's generator). When a
data-parallel rank runs its share of the rows, both must still behave as on the whole batch, so that the loss
equals single-process training (docs/architecture.md §11). The students call :func:`batch_norm` and
:func:`dropout` here; outside :func:`active` they are ``F.batch_norm`` and :func:`dropout_noise`-based dropout,
inside it the active :class:`Shard` computes them (synchronised statistics, the rows of the whole-batch mask).

Dropout (docs/performance.md §3.1). ``y = x * m / (1 - p)`` with ``m_i ~ Bernoulli(1 - p)`` independent, as
``F.dropout``, but the mask is drawn as 32-bit uniform integers instead of ``bernoulli_`` (2-3x cheaper on CPU,
where ``bernoulli_`` costs ~5 ns per element and was 15-24% of a training step)::

    u_i = the i-th little-endian 32-bit half of torch's 64-bit random draws, read as int32 (uniform on
          [-2^31, 2^31)); keep m_i = 1[u_i >= t],  t = round(p * 2^32) - 2^31
    P(m_i = 1) = 1 - round(p * 2^32) / 2^32     (p to within 2^-33)

The mask is always drawn for the *logical* (row-major, contiguous) shape, whatever the activation's strides, so a
shard's part of the whole-batch mask is a plain slice of it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Shard", "active", "current", "batch_norm", "dropout", "keep_mask", "dropout_noise", "apply_noise"]


class Shard(Protocol):
    """What a rank's share of a training step provides (see collapse_lab.parallel.ops.RowShard)."""

    def batch_norm(self, x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None,
                   bias: Tensor | None, momentum: float, eps: float) -> Tensor:
        """Training-mode batch norm of the local rows ``x`` with the statistics of the whole batch."""

    def dropout(self, a: Tensor, p: float) -> Tensor:
        """Training-mode dropout of the local rows with the local rows of the whole batch's mask."""


# a context variable, not a global: another thread training at the same time keeps single-process behaviour
_current: contextvars.ContextVar[Shard | None] = contextvars.ContextVar("collapse_lab_shard", default=None)


def current() -> Shard | None:
    """The active shard, or None (single-process behaviour)."""
    return _current.get()


@contextlib.contextmanager
def active(shard: Shard) -> Iterator[Shard]:
    """Route :func:`batch_norm` and :func:`dropout` to ``shard`` inside the block (one training step)."""
    token = _current.set(shard)
    try:
        yield shard
    finally:
        _current.reset(token)


def batch_norm(x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None, bias: Tensor | None,
               training: bool, momentum: float, eps: float) -> Tensor:
    """``F.batch_norm``, or the active shard's synchronised version in training mode."""
    shard = _current.get()
    if training and shard is not None:
        return shard.batch_norm(x, running_mean, running_var, weight, bias, momentum, eps)
    return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def keep_mask(shape: Sequence[int], p: float, device: torch.device | str = "cpu") -> Tensor:
    """Boolean keep mask of ``shape`` (contiguous), ``P(True) = 1 - p`` (module docstring); one 64-bit draw of
    torch's default generator per two elements."""
    numel = math.prod(int(d) for d in shape)
    bits = torch.empty(((numel + 1) // 2,), dtype=torch.int64, device=device).random_(-2**63, None)
    threshold = int(round(float(p) * 2**32)) - 2**31
    return bits.view(torch.int32)[:numel].view(*shape).ge(threshold)


def _exact_noise(dtype: torch.dtype) -> bool:
    return dtype in (torch.float32, torch.float64)


def dropout_noise(keep: Tensor, p: float, dtype: torch.dtype) -> Tensor:
    """The noise in ``dtype``: ``keep / (1 - p)`` for float32/float64; for a low-precision activation (bf16/fp16)
    the exact 0/1 mask, scaled by :func:`apply_noise` afterwards in float math (a bf16 ``1/(1-p)`` would be a
    biased factor: 1/0.9 rounds to 1.109375)."""
    noise = keep.to(dtype)
    return noise.mul_(1.0 / (1.0 - p)) if _exact_noise(dtype) else noise


def apply_noise(a: Tensor, noise: Tensor, p: float) -> Tensor:
    """``a * noise``; for a low-precision ``a`` then ``* (1 / (1 - p))`` (rounded once per element)."""
    out = a * noise
    return out if _exact_noise(noise.dtype) else out.mul_(1.0 / (1.0 - p))


def dropout(a: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with the integer-threshold mask (module docstring), or the active shard's rows of the whole-batch
    mask in training mode; the identity in eval mode or with ``p == 0``."""
    if not training or p == 0:
        return a
    shard = _current.get()
    if shard is not None:
        return shard.dropout(a, p)
    return apply_noise(a, dropout_noise(keep_mask(a.shape, p, a.device), p, a.dtype), p)
