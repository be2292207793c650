"""``kdef``: KD + DML + the examination mechanism (paper Eq. 10, exactly as the authors' code, docs/method.md §4).

    L = (1/K) sum_k BCE(p_k, y)                                           label term, averaged over students
      + sum_k lambda_k * cons(p_k, stopgrad(T))                           KD toward the detached teacher
      + (1/K) sum_k sum_{l != k} mu_{k,l} * cons(p_k, stopgrad(p_l))      DML toward detached peers

with T = sigma(z_t) (``sigma(mean_k z_k)`` under mean fusion), p_k = sigma(z_k), every consistency term a
mean over the batch, and no BCE on the ensemble output (§4 item 6). lambda = softmin(S) and
mu_{k,.} = softmax_{l != k}(S_l - S_k) from the exam scores S_k = 1 - mean|y - p_k|
(:mod:`collapse_lab.strategies.examination`); they are recomputed on every batch and **not detached**
(§4 item 5) unless ``detach_exam=True``. With K = 1 the DML term vanishes and lambda = [1].

Ablations (arXiv 2411.16122 Table V and the controls of :mod:`collapse_lab.recipes`), all with KDEF's own
normalisation (mean student BCE, lambda summing to 1, mu rows summing to 1, DML term divided by K):

* ``terms=("kd",)``: the KD term only (mu = 0); ``terms=("dml",)``: the DML term only (lambda = 0);
  ``terms=()``: the mean student BCE alone. The EM weights of the kept term are unchanged.
* ``exam_weights="uniform"``: lambda_k = 1/K and mu_{k,l} = 1/(K-1), the means of the EM weights.
* ``exam=False`` / ``exam_weights="constant"`` ("w/o EM" of Table V): lambda_k = kd_weight (default 1) and
  mu_{k,l} = mutual_weight (default 1), i.e. the KD weights sum to K and each mu row to K-1.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import torch
from torch import Tensor

from collapse_lab.recipes import KDEF_TERMS, kdef_terms
from collapse_lab.strategies.base import STRATEGIES, Task, distillation_terms, mutual_terms, student_bce

__all__ = ["KDEFTask"]


@STRATEGIES.register("kdef")
class KDEFTask(Task):
    """Eq. 10: mean student BCE + EM-weighted KD toward the detached teacher + mean EM-weighted DML.

    Args:
        terms: the transfer terms kept, a subset of ``("kd", "dml")`` (default both); other arguments as
            :class:`~collapse_lab.strategies.base.Task`.
    """

    default_exam = True
    trains_fused_output = False  # a loss on the fused output (concat fusion needs one)

    def __init__(self, num_students: int, *args: Any, terms: Sequence[str] = KDEF_TERMS, **kwargs: Any) -> None:
        super().__init__(num_students, *args, **kwargs)
        self.terms = tuple(kdef_terms(terms))

    def compute(self, logits: Tensor, fused_logit: Tensor, labels: Tensor) -> Dict[str, Any]:
        n = logits.shape[1]
        probs = torch.sigmoid(logits)  # (B, N)
        task = student_bce(logits, labels).mean()
        lam, mu = self.weights(probs, labels, default_mu=1.0)
        zero = task.new_zeros(())
        kd = (lam * distillation_terms(self.cons, probs, torch.sigmoid(fused_logit))).sum() \
            if "kd" in self.terms else zero
        mutual = (mu * mutual_terms(self.cons, probs)).sum() / n if n > 1 and "dml" in self.terms else zero
        return self.parts(task + kd + mutual, task, kd_loss=kd, mutual_loss=mutual,
                          lam=lam if "kd" in self.terms else None, mu=mu if "dml" in self.terms else None)
