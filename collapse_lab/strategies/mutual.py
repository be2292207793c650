"""``dml``: deep mutual learning between the students (paper Eq. 7, Figs. 5b-6).

    L = sum_k [ BCE(p_k, y) + sum_{l != k} mu_{k,l} * cons(p_k, stopgrad(p_l)) ]

The per-student BCE terms are **summed**, not averaged (Eq. 7). ``mu_{k,l} = 1/K`` (paper footnote 3) unless
``mutual_weight`` is given, or the examination weights with ``exam=True``. In each ordered pair only student k
receives the gradient (the peer is detached). The ensemble prediction is still ``sigma(z_t)`` of the fusion.
"""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor

from collapse_lab.strategies.base import STRATEGIES, Task, mutual_terms, student_bce

__all__ = ["MutualLearningTask"]


@STRATEGIES.register("dml")
class MutualLearningTask(Task):
    """Eq. 7: summed per-student BCE + weighted consistency of every student with every detached peer."""

    default_exam = False
    trains_fused_output = False  # a loss on the fused output (concat fusion needs one)

    def compute(self, logits: Tensor, fused_logit: Tensor, labels: Tensor) -> Dict[str, Any]:
        n = logits.shape[1]
        probs = torch.sigmoid(logits)  # (B, N)
        task = student_bce(logits, labels).sum()
        _, mu = self.weights(probs, labels, default_mu=1.0 / n)
        mutual = (mu * mutual_terms(self.cons, probs)).sum() if n > 1 else task.new_zeros(())
        return self.parts(task + mutual, task, mutual_loss=mutual, mu=mu)
