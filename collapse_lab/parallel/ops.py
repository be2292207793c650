"""Collective operations of a multi-process training step (docs/architecture.md §11).

Every rank evaluates the *whole* loss ``L`` (on the gathered logits) and back-propagates ``L / G``; the
gradients of all ranks are then summed. With this convention each piece below is the exact adjoint of its
forward, so the summed gradient is ``dL/dtheta`` of single-process training:

* :func:`gather` concatenates the ranks' shards along a dimension; its backward sums the incoming gradients of
  every rank (``G`` copies of ``(1/G) dL/dx``) and keeps the local shard: ``dL/dx_r``.
* :class:`RowShard` (data parallel) computes BatchNorm with the mean and variance of the whole batch (two
  autograd all-reduces of per-channel sums, as ``torch.nn.SyncBatchNorm``) and updates the running statistics
  with the unbiased variance of the whole batch; its dropout draws the mask of the whole batch from torch's
  generator and keeps the local rows, so the masks (and the generator's state) equal single-process training.
* :func:`all_reduce_gradients` sums every parameter's gradient over the ranks; a parameter that has no gradient
  on any rank keeps ``None`` (Adam then skips it, as in single-process training).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from collapse_lab.models import shard as model_shard

__all__ = ["split_sizes", "all_reduce", "gather", "RowShard", "MemberShard", "whole_mask", "all_reduce_gradients",
           "sum_owned"]


def split_sizes(total: int, parts: int) -> List[int]:
    """Sizes of ``torch.tensor_split`` of ``total`` items into ``parts``: the first ``total % parts`` get one more.

    Example:
        >>> split_sizes(10, 4)
        [3, 3, 2, 2]
    """
    return [len(chunk) for chunk in torch.tensor_split(torch.arange(total), parts)]


class _Gather(torch.autograd.Function):
    """All-gather of uneven shards along ``dim``; backward = all-reduce of the gradient, then the local shard."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: int, sizes: Tuple[int, ...], rank: int) -> Tensor:  # type: ignore[override]
        ctx.dim, ctx.sizes, ctx.rank = dim, sizes, rank
        width = max(sizes)
        pad = list(x.shape)
        pad[dim] = width - x.shape[dim]
        padded = torch.cat([x, x.new_zeros(pad)], dim=dim).contiguous() if pad[dim] else x.contiguous()
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, sizes, strict=True)], dim=dim)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[:ctx.rank])
        return grad.narrow(ctx.dim, start, ctx.sizes[ctx.rank]), None, None, None


class _AllReduce(torch.autograd.Function):
    """Sum over the ranks; backward = the sum of the ranks' gradients (the adjoint of a replicated sum)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        x = x.contiguous().clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(x: Tensor) -> Tensor:
    """``sum_r x_r`` on every rank, keeping autograd."""
    return _AllReduce.apply(x)


def gather(x: Tensor, dim: int, sizes: Sequence[int], rank: int) -> Tensor:
    """Concatenate every rank's ``x`` (``sizes[r]`` long along ``dim``) in rank order, keeping autograd."""
    return _Gather.apply(x, dim, tuple(int(s) for s in sizes), int(rank))


def whole_mask(a: Tensor, whole_shape: Sequence[int], index: Tuple[slice, ...], p: float) -> Tensor:
    """The ``index`` part of the dropout noise of a tensor of ``whole_shape`` (:func:`collapse_lab.models.shard.
    dropout_noise`, for ``a``'s dtype).

    The mask is drawn for the logical (contiguous) whole shape, as single-process training draws it
    (:func:`collapse_lab.models.shard.dropout`), so the draw consumes torch's generator as on the whole tensor and
    its ``index`` part is the mask single-process training applies to these elements.
    """
    keep = model_shard.keep_mask(whole_shape, p, a.device)[index]
    return model_shard.dropout_noise(keep, p, a.dtype)


class RowShard:
    """A data-parallel rank's rows ``[start, stop)`` of a batch of ``total`` rows (a models.shard.Shard)."""

    def __init__(self, start: int, stop: int, total: int) -> None:
        self.start, self.stop, self.total = int(start), int(stop), int(total)

    def batch_norm(self, x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None,
                   bias: Tensor | None, momentum: float, eps: float) -> Tensor:
        """``(x - mean) / sqrt(var + eps) * weight + bias`` with the whole batch's mean and biased variance."""
        n = self.total
        mean = all_reduce(x.sum(dim=0)) / n  # (C,)
        centred = x - mean
        var = all_reduce(centred.pow(2).sum(dim=0)) / n  # biased, as used for normalisation
        y = centred * torch.rsqrt(var + eps)
        if weight is not None:
            y = y * weight + bias
        with torch.no_grad():
            running_mean.mul_(1.0 - momentum).add_(mean.detach(), alpha=momentum)
            running_var.mul_(1.0 - momentum).add_(var.detach() * (n / max(n - 1, 1)), alpha=momentum)
        return y

    def dropout(self, a: Tensor, p: float) -> Tensor:
        noise = whole_mask(a, (self.total, *a.shape[1:]), (slice(self.start, self.stop),), p)
        return model_shard.apply_noise(a, noise, p)


class MemberShard:
    """An ensemble-parallel rank's students ``[start, stop)`` of ``total`` in the batched form (dimension 1).

    BatchNorm statistics are per student, hence local; dropout keeps this rank's students' part of the mask
    of all students.
    """

    def __init__(self, start: int, stop: int, total: int) -> None:
        self.start, self.stop, self.total = int(start), int(stop), int(total)

    def batch_norm(self, x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor | None,
                   bias: Tensor | None, momentum: float, eps: float) -> Tensor:
        import torch.nn.functional as F

        return F.batch_norm(x, running_mean, running_var, weight, bias, True, momentum, eps)

    def dropout(self, a: Tensor, p: float) -> Tensor:
        whole = (a.shape[0], self.total, *a.shape[2:])
        return model_shard.apply_noise(a, whole_mask(a, whole, (slice(None), slice(self.start, self.stop)), p), p)


def all_reduce_gradients(params: Sequence[Tensor]) -> None:
    """Sum ``.grad`` over the ranks in one flat all-reduce; gradients missing on every rank stay ``None``."""
    params = list(params)
    if not params:
        return
    device = params[0].device
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.int64, device=device)
    dist.all_reduce(present)
    live = [p for p, n in zip(params, present.tolist(), strict=True) if n > 0]
    if not live:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in live])
    dist.all_reduce(flat)
    offset = 0
    for p in live:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def sum_owned(tensors: Sequence[Tensor], owned: Sequence[bool]) -> None:
    """Make every rank hold the owner's value of each tensor: all-reduce (own value or zeros), in place.

    Used for the BatchNorm running statistics of ensemble-parallel students (buffers, no gradient): only the
    rank that runs student k updates them. Tensors are grouped by dtype (float statistics, int64 counters).
    """
    by_dtype: dict = {}
    for t, own in zip(tensors, owned, strict=True):
        by_dtype.setdefault(t.dtype, []).append((t, own))
    for dtype in sorted(by_dtype, key=str):
        group = by_dtype[dtype]
        flat = torch.cat([(t if own else torch.zeros_like(t)).reshape(-1) for t, own in group])
        dist.all_reduce(flat)
        offset = 0
        for t, _ in group:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t))
            offset += n
