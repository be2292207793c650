"""The training-task contract shared by all methods (timm's *task* idea: the loss module owns the objective).

A task is called as ``parts = task(out, labels)`` with ``out`` the ensemble's output dict (``logits`` (B, N),
``fused_logit`` (B,)) and ``labels`` float32 (B,). It returns

* ``loss``: the scalar to back-propagate (the trainer adds the embedding regulariser);
* ``task_loss``, ``kd_loss``, ``mutual_loss``: detached scalars of the three terms (0 where not applicable);
* ``lambda``: detached ``(N,)`` teacher weights used this batch, or ``None``;
* ``mu``: detached ``(N, N)`` peer weights (zero diagonal), or ``None``.

Notation (docs/method.md §3): ``z_k`` student logits, ``p_k = sigma(z_k)``, the teacher ``T = sigma(z_t)`` with
``z_t = out["fused_logit"]`` (``mean_k z_k`` under mean fusion, §4 item 1), ``BCE`` the label loss
``binary_cross_entropy_with_logits`` (equal to FuxiCTR's BCE on probabilities, numerically stable).
The teacher is detached in KD terms and the peer in DML terms (§4 items 2-3): only student k is pulled.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.recipes import resolve_weight_mode
from collapse_lab.registry import Registry
from collapse_lab.strategies.consistency import CONSISTENCY
from collapse_lab.strategies.examination import examination

__all__ = ["STRATEGIES", "Task", "student_bce", "distillation_terms", "mutual_terms"]

STRATEGIES = Registry("method")


def student_bce(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-student label loss ``BCE(p_k, y)`` averaged over the batch: ``(B, N)``, ``(B,)`` -> ``(N,)``."""
    target = labels.unsqueeze(1).expand_as(logits)  # (B, N)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=0)


def distillation_terms(cons: Any, probs: Tensor, teacher: Tensor) -> Tensor:
    """``cons(p_k, stopgrad(T))`` averaged over the batch: ``(B, N)``, ``(B,)`` -> ``(N,)``."""
    target = teacher.detach().unsqueeze(1).expand_as(probs)  # (B, N)
    return cons(probs, target).mean(dim=0)


def mutual_terms(cons: Any, probs: Tensor) -> Tensor:
    """``C[k, l] = cons(p_k, stopgrad(p_l))`` averaged over the batch: ``(B, N)`` -> ``(N, N)``."""
    b, n = probs.shape
    student = probs.unsqueeze(2).expand(b, n, n)  # (B, N, N): [i, k, l] = p_{k,i}
    peer = probs.detach().unsqueeze(1).expand(b, n, n)  # (B, N, N): [i, k, l] = p_{l,i}
    return cons(student, peer).mean(dim=0)  # (N, N)


class Task(nn.Module, ABC):
    """Base class of the methods; subclasses implement :meth:`compute`.

    Args:
        num_students: N, the number of students of the ensemble.
        cons: consistency loss name in ``CONSISTENCY`` (``mse`` | ``mae`` | ``kl`` | ``bce`` | ``huber``).
        kd_weight: teacher weight ``lambda_k`` when the examination is off (default 1).
        mutual_weight: peer weight ``mu_{k,l}`` when the examination is off (``None`` = the method's default).
        exam: set ``lambda``/``mu`` by the examination mechanism (``None`` = the method's default).
        detach_exam: compute the exam scores from detached predictions (no gradient through ``lambda``/``mu``).
        exam_weights: ``em`` | ``uniform`` | ``constant`` (``None`` = by ``exam``, see
            :func:`collapse_lab.recipes.weight_mode`); ``uniform`` is ``lambda_k = 1/N`` and
            ``mu_{k,l} = 1/(N-1)``, the values the EM weights average to (softmin and softmax rows sum to 1).
    """

    default_exam = False
    #: whether the loss reaches the fused output through a label term (vanilla, kd). Methods without one (dml, kdef:
    #: KDEF's teacher is detached) cannot train a concat-fusion head, so :func:`collapse_lab.strategies.check_config`
    #: refuses ``fusion=concat`` for them
    trains_fused_output = True

    def __init__(self, num_students: int, cons: str = "mse", kd_weight: float = 1.0,
                 mutual_weight: float | None = None, exam: bool | None = None, detach_exam: bool = False,
                 exam_weights: str | None = None) -> None:
        super().__init__()
        if isinstance(num_students, bool) or not isinstance(num_students, numbers.Integral) or num_students < 1:
            raise UserError(f"n (number of students) must be an integer >= 1, got {num_students!r}")
        for key, value in (("kd_weight", kd_weight), ("mutual_weight", mutual_weight)):
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
            if value is not None and not ok:
                raise UserError(f"{key} must be a finite number >= 0, got {value!r}")
        self.num_students = int(num_students)
        self.cons_name = cons
        self.cons = CONSISTENCY.get(cons)
        self.kd_weight = float(kd_weight)
        self.mutual_weight = None if mutual_weight is None else float(mutual_weight)
        self.exam_weights = resolve_weight_mode("em" if self.default_exam else "constant", exam, exam_weights)
        self.exam = self.exam_weights == "em"
        self.detach_exam = bool(detach_exam)

    def forward(self, out: Dict[str, Any], labels: Tensor) -> Dict[str, Any]:
        logits = out["logits"]  # (B, N)
        if logits.dim() != 2 or logits.shape[1] != self.num_students:
            raise UserError(f"{type(self).__name__} was built for {self.num_students} students, "
                            f"got logits of shape {tuple(logits.shape)}")
        return self.compute(logits, out["fused_logit"], labels.to(logits.dtype))

    @abstractmethod
    def compute(self, logits: Tensor, fused_logit: Tensor, labels: Tensor) -> Dict[str, Any]:
        """The method's loss parts from student logits ``(B, N)``, the fused logit ``(B,)`` and labels ``(B,)``."""

    # ---- helpers for subclasses ------------------------------------------------------------------------------
    def weights(self, probs: Tensor, labels: Tensor, default_mu: float) -> tuple:
        """``(lambda (N,), mu (N, N))`` with a zero diagonal in ``mu``, by ``exam_weights``: ``em`` the EM
        weights; ``uniform`` ``1/N`` and ``1/(N-1)``; ``constant`` ``kd_weight`` and ``mutual_weight`` (or
        ``default_mu``)."""
        n = probs.shape[1]
        if self.exam_weights == "em":
            return examination(probs, labels, detach=self.detach_exam)
        if self.exam_weights == "uniform":
            lam_value, mu_value = 1.0 / n, 1.0 / max(n - 1, 1)
        else:
            lam_value, mu_value = self.kd_weight, default_mu if self.mutual_weight is None else self.mutual_weight
        lam = torch.full((n,), lam_value, dtype=probs.dtype, device=probs.device)
        mu = mu_value * (1.0 - torch.eye(n, dtype=probs.dtype, device=probs.device))
        return lam, mu

    @staticmethod
    def parts(loss: Tensor, task_loss: Tensor, kd_loss: Tensor | None = None, mutual_loss: Tensor | None = None,
              lam: Tensor | None = None, mu: Tensor | None = None) -> Dict[str, Any]:
        zero = torch.zeros((), dtype=loss.dtype, device=loss.device)
        return {"loss": loss, "task_loss": task_loss.detach(),
                "kd_loss": zero if kd_loss is None else kd_loss.detach(),
                "mutual_loss": zero if mutual_loss is None else mutual_loss.detach(),
                "lambda": None if lam is None else lam.detach(), "mu": None if mu is None else mu.detach()}
