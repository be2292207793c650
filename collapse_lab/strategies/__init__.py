"""Training methods as loss modules (tasks): ``vanilla``, ``kd`` (Eq. 6), ``dml`` (Eq. 7), ``kdef`` (Eq. 10)."""

from __future__ import annotations

from typing import Any, Dict, Sequence

from collapse_lab import recipes
from collapse_lab.errors import UserError
from collapse_lab.strategies.base import STRATEGIES, Task
from collapse_lab.strategies.checks import check_config
from collapse_lab.strategies.consistency import CONSISTENCY
from collapse_lab.strategies.distillation import DistillationTask
from collapse_lab.strategies.ensemble import EnsembleTask
from collapse_lab.strategies.examination import exam_scores, examination, selective_weights, tailored_weights
from collapse_lab.strategies.kdef import KDEFTask
from collapse_lab.strategies.mutual import MutualLearningTask

__all__ = ["CONSISTENCY", "STRATEGIES", "DistillationTask", "EnsembleTask", "KDEFTask", "MutualLearningTask", "Task",
           "build_strategy", "check_config", "exam_scores", "examination", "selective_weights", "tailored_weights"]


def build_strategy(name: str, num_students: int, cons: str = "mse", kd_weight: float = 1.0,
                   mutual_weight: float | None = None, exam: bool | None = None,
                   detach_exam: bool = False, exam_weights: str | None = None,
                   kdef_terms: Sequence[str] | None = None) -> Task:
    """Build the loss module of a method.

    Args:
        name: ``vanilla`` | ``kd`` | ``dml`` | ``kdef``.
        num_students: N.
        cons: consistency loss ``mse`` | ``mae`` | ``kl`` | ``bce`` | ``huber`` (on probabilities).
        kd_weight: lambda_k when the examination is off (kd, kdef; default 1).
        mutual_weight: mu_{k,l} when the examination is off (``None``: dml 1/N, kdef 1).
        exam: weights from the examination mechanism; ``None`` = the method's default (kdef on, kd/dml off).
        detach_exam: no gradient through the examination weights (the authors' code lets it flow).
        exam_weights: ``em`` | ``uniform`` (``lambda_k = 1/N``, ``mu_{k,l} = 1/(N-1)``) | ``constant``
            (``kd_weight``, ``mutual_weight``); ``None`` = by ``exam``.
        kdef_terms: the transfer terms kdef keeps (``["kd"]``: mu = 0, ``["dml"]``: lambda = 0); ``None`` = both.
            Other methods accept only ``None`` or both terms.

    Example:
        >>> import torch
        >>> task = build_strategy("kdef", num_students=2)
        >>> parts = task({"logits": torch.zeros(4, 2), "fused_logit": torch.zeros(4)}, torch.tensor([0., 1, 0, 1]))
        >>> round(parts["loss"].item(), 4), parts["lambda"].tolist(), parts["mu"].tolist()
        (0.6931, [0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]])
    """
    extra: Dict[str, Any] = {}
    if kdef_terms is not None and recipes.kdef_terms(kdef_terms) != list(recipes.KDEF_TERMS):
        if name != "kdef":
            raise UserError(f"config key 'kdef_terms': expected [kd, dml] unless method is kdef, got {kdef_terms!r}")
        extra["terms"] = kdef_terms
    return STRATEGIES.create(name, num_students=num_students, cons=cons, kd_weight=kd_weight,
                             mutual_weight=mutual_weight, exam=exam, detach_exam=detach_exam,
                             exam_weights=exam_weights, **extra)
