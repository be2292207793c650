"""``vanilla``: the plain fused ensemble (docs/method.md §1, Fig. 2), trained with BCE on the fused prediction only.

    L = BCE(sigma(z_t), y)        z_t = mean | sum | concat fusion of the students

Students get label signal only through the fused logit; their own predictions sigma(z_k) are still reported
(paper C2: this is where the per-student collapse shows).
"""

from __future__ import annotations

from typing import Any, Dict

import torch.nn.functional as F
from torch import Tensor

from collapse_lab.strategies.base import STRATEGIES, Task

__all__ = ["EnsembleTask"]


@STRATEGIES.register("vanilla")
class EnsembleTask(Task):
    """BCE on the fused prediction; no teacher or peer terms (``lambda = mu = None``)."""

    trains_fused_output = True  # a loss on the fused output (concat fusion needs one)

    def compute(self, logits: Tensor, fused_logit: Tensor, labels: Tensor) -> Dict[str, Any]:
        loss = F.binary_cross_entropy_with_logits(fused_logit, labels)
        return self.parts(loss, loss)
