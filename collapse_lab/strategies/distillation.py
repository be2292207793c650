"""``kd``: online distillation from the fused "abstract teacher" (paper Eq. 6, Figs. 4-5a).

    L = BCE(T, y) + sum_k lambda_k * cons(p_k, stopgrad(T))        T = sigma(z_t), p_k = sigma(z_k)

BCE acts on the ensemble only; students learn the label through the fused logit plus the pull toward the
detached teacher (the paper leaves the detaching of this variant open, §3; we detach as the KDEF code does).
``lambda_k = kd_weight`` (default 1), or ``softmin(S)`` from the examination mechanism with ``exam=True``.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from collapse_lab.strategies.base import STRATEGIES, Task, distillation_terms

__all__ = ["DistillationTask"]


@STRATEGIES.register("kd")
class DistillationTask(Task):
    """Eq. 6: ensemble BCE + weighted consistency of every student with the detached teacher."""

    default_exam = False
    trains_fused_output = True  # a loss on the fused output (concat fusion needs one)

    def compute(self, logits: Tensor, fused_logit: Tensor, labels: Tensor) -> Dict[str, Any]:
        probs = torch.sigmoid(logits)  # (B, N)
        task = F.binary_cross_entropy_with_logits(fused_logit, labels)
        lam, _ = self.weights(probs, labels, default_mu=0.0)
        kd = (lam * distillation_terms(self.cons, probs, torch.sigmoid(fused_logit))).sum()
        return self.parts(task + kd, task, kd_loss=kd, lam=lam)
