"""Batch-dependent operations of the students, open to a multi-process step (collapse_lab.parallel).

Two operations inside a student depend on the whole batch or on the random-number stream: BatchNorm (the
mean and variance over the batch rows) and dropout (a Bernoulli mask drawn from torch's generator). When a
data-parallel rank runs its share of the rows, both must still behave as on the whole batch, so that the loss
equals single-process training (docs/architecture.md §11). The students call :func:`batch_norm` and
:func:`dropout` here; outside :func:`active` they are exactly ``F.batch_norm`` and ``F.dropout``, inside it the
active :class:`Shard` computes them (synchronised statistics, the rows of the whole-batch mask).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Protocol

import torch.nn.functional as F
from torch import Tensor

__all__ = ["Shard", "active", "current", "batch_norm", "dropout"]


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


def dropout(a: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout``, or the active shard's rows of the whole-batch mask in training mode."""
    shard = _current.get()
    if training and p > 0 and shard is not None:
        return shard.dropout(a, p)
    return F.dropout(a, p, training)
