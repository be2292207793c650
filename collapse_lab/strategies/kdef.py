"""``kdef``: KD + DML + the examination mechanism (paper Eq. 10, exactly as the authors' code, paper.md §4).

    L = (1/K) sum_k BCE(p_k, y)                                           label term, averaged over students
      + sum_k lambda_k * cons(p_k, stopgrad(T))                           KD toward the detached teacher
      + (1/K) sum_k sum_{l != k} mu_{k,l} * cons(p_k, stopgrad(p_l))      DML toward detached peers

with T = sigma(z_t) (``sigma(mean_k z_k)`` under mean fusion), p_k = sigma(z_k), every consistency term a
mean over the batch, and no BCE on the ensemble output (§4 item 6). lambda = softmin(S) and
mu_{k,.} = softmax_{l != k}(S_l - S_k) from the exam scores S_k = 1 - mean|y - p_k|
(:mod:`collapse_lab.strategies.examination`); they are recomputed on every batch and **not detached**
(§4 item 5) unless ``detach_exam=True``. Ablation ``exam=False`` ("w/o EM"): lambda_k = kd_weight (default 1)
and mu_{k,l} = mutual_weight (default 1). With K = 1 the DML term vanishes and lambda = [1].
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from collapse_lab.strategies.base import STRATEGIES, Task, distillation_terms, mutual_terms, student_bce

__all__ = ["KDEFTask"]


@STRATEGIES.register("kdef")
class KDEFTask(Task):
    """Eq. 10: mean student BCE + EM-weighted KD toward the detached teacher + mean EM-weighted DML."""

    default_exam = True

    def compute(self, logits: Tensor, fused_logit: Tensor, labels: Tensor) -> Dict[str, Any]:
        n = logits.shape[1]
        probs = torch.sigmoid(logits)  # (B, N)
        task = student_bce(logits, labels).mean()
        lam, mu = self.weights(probs, labels, default_mu=1.0)
        kd = (lam * distillation_terms(self.cons, probs, torch.sigmoid(fused_logit))).sum()
        mutual = (mu * mutual_terms(self.cons, probs)).sum() / n if n > 1 else task.new_zeros(())
        return self.parts(task + kd + mutual, task, kd_loss=kd, mutual_loss=mutual, lam=lam, mu=mu)
