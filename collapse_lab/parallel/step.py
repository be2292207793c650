"""One training step over G processes, with the loss and the update of single-process training.

Both steps have the signature of :func:`collapse_lab.training.trainer.training_step` and end the same way: every
rank holds the whole loss ``L`` (task loss on the gathered logits of the whole batch and all students, plus the
embedding regulariser), back-propagates ``L / G``, sums the gradients over the ranks (collapse_lab.parallel.ops),
clips them by their global norm and takes the Adam step. Every rank therefore keeps the full model and optimizer
state, identical to single-process training up to float summation order (docs/architecture.md §11).

* ``data``: rank r runs the rows ``tensor_split(B, G)[r]`` of the batch through the whole ensemble; BatchNorm
  uses the whole batch's statistics and dropout the whole batch's mask (:class:`~.ops.RowShard`). The
  examination weights (paper Eqs. 8-9) and the KD teacher (Eq. 6) are computed on the gathered logits of the
  whole batch, so they are the single-process values.
* ``ensemble``: rank r runs the students ``tensor_split(N, G)[r]`` on the whole batch (the embedding lookup is
  repeated on every rank); the student logits (and, for ``concat`` fusion, the last hidden outputs) are
  gathered before the fusion. A rank still draws the dropout masks of the other students, so the generator
  advances as in single-process training, and the BatchNorm running statistics of each student are copied
  from its rank after the step.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import Tensor

from collapse_lab.models import shard
from collapse_lab.parallel.ops import MemberShard, RowShard, all_reduce_gradients, gather, split_sizes, sum_owned

__all__ = ["data_parallel_step", "ensemble_parallel_step"]

StepFn = Callable[..., Dict[str, Any]]


def _update(model: Any, task_parts: Dict[str, Any], optimizer: Any, embedding_regularizer: float,
            clip_grad_norm: float | None, world_size: int) -> Dict[str, Any]:
    """Back-propagate ``(loss + reg) / G``, sum the gradients over the ranks, clip, step."""
    reg = model.embedding_penalty(embedding_regularizer)
    total = task_parts["loss"] + reg
    optimizer.zero_grad(set_to_none=True)
    (total / world_size).backward()
    all_reduce_gradients(list(model.parameters()))
    if clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return {**task_parts, "loss": total.detach(), "reg_loss": reg.detach()}


def data_parallel_step(rank: int, world_size: int) -> StepFn:
    """The ``data`` step of rank ``rank`` of ``world_size`` (see the module docstring)."""

    def step(model: Any, task: Any, optimizer: Any, batch: Any, embedding_regularizer: float = 0.0,
             clip_grad_norm: float | None = 10.0) -> Dict[str, Any]:
        sizes = split_sizes(len(batch), world_size)
        start = sum(sizes[:rank])
        stop = start + sizes[rank]
        values = None if batch.values is None else batch.values[start:stop]
        with shard.active(RowShard(start, stop, len(batch))):
            out = model(batch.ids[start:stop], values=values)
        whole = {"logits": gather(out["logits"], 0, sizes, rank),
                 "fused_logit": gather(out["fused_logit"], 0, sizes, rank)}
        return _update(model, task(whole, batch.labels), optimizer, embedding_regularizer, clip_grad_norm,
                       world_size)

    return step


def _draw_skipped_masks(student: Any, rows: int, like: Tensor) -> None:
    """Advance torch's generator as ``student``'s dropout layers would on ``rows`` rows (loop form)."""
    for layer in student.layers:
        if layer.dropout > 0:
            shard.keep_mask((rows, layer.linear.out_features), layer.dropout, like.device)


def _student_buffers(model: Any, start: int, stop: int) -> Tuple[List[Tensor], List[bool]]:
    """The students' buffers (BatchNorm statistics) as views, and whether this rank runs their student."""
    tensors, owned = [], []
    for name, (t, k) in model._slots().items():
        if name.startswith("students.") and not isinstance(t, torch.nn.Parameter):
            tensors.append(t if k is None else t[k])
            owned.append(start <= int(name.split(".")[1]) < stop)
    return tensors, owned


def ensemble_parallel_step(rank: int, world_size: int, num_students: int) -> StepFn:
    """The ``ensemble`` step of rank ``rank`` of ``world_size`` for ``num_students`` students."""
    sizes = split_sizes(num_students, world_size)
    start = sum(sizes[:rank])
    stop = start + sizes[rank]
    buffers: Dict[int, Tuple[List[Tensor], List[bool]]] = {}

    def step(model: Any, task: Any, optimizer: Any, batch: Any, embedding_regularizer: float = 0.0,
             clip_grad_norm: float | None = 10.0) -> Dict[str, Any]:
        h = model.embedding(batch.ids, batch.values)  # (B, F*D), the same on every rank
        concat = model.fusion_kind == "concat"
        if model.students is not None:  # loop form
            zs, lasts = [], []
            for k, student in enumerate(model.students):
                if start <= k < stop:
                    z, last = student(h)
                    zs.append(z)
                    lasts.append(last)
                elif model.training:
                    _draw_skipped_masks(student, h.shape[0], h)
            logits = torch.stack(zs, dim=1)  # (B, n_r)
            hidden = torch.cat(lasts, dim=1) if concat else None  # (B, n_r * H_last)
        else:  # batched form: this rank's slice of the stacked students
            with shard.active(MemberShard(start, stop, num_students)):
                logits, last = model.stack(h, members=slice(start, stop))  # (B, n_r), (B, n_r, H_last)
            hidden = last.reshape(last.shape[0], -1) if concat else None
        logits = gather(logits, 1, sizes, rank)  # (B, N)
        if concat:
            width = hidden.shape[1] // sizes[rank]
            hidden = gather(hidden, 1, [n * width for n in sizes], rank)  # (B, N * H_last), student-major
        whole = {"logits": logits, "fused_logit": model.fusion(logits, hidden)}
        parts = _update(model, task(whole, batch.labels), optimizer, embedding_regularizer, clip_grad_norm,
                        world_size)
        if id(model) not in buffers:
            buffers[id(model)] = _student_buffers(model, start, stop)
        with torch.no_grad():
            sum_owned(*buffers[id(model)])
        return parts

    return step
