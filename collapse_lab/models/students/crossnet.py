"""The ``crossnet`` student: DCNv2's cross network alone plus a logit head (Table VI's "CrossNetv2", docs/method.md §7).

    x_0 = h                                                     (B, F*D)
    x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l        l = 0 .. L-1     W_l: (F*D, F*D), b_l: (F*D,)
    z = w_head · x_L + b_head

This is ``CrossNetV2`` of the authors' ``src/Backbone.py`` (identical to FuxiCTR 2.3.10's
``layers/interactions/cross_net.py``): full-rank cross layers, no activation, no BatchNorm, no dropout.

Deviations from the authors' code:

- the authors' ``CrossNetV2`` returns ``x_L`` without a logit head, so the Table VI wiring was not released
  (docs/method.md §7); this student adds its own head ``Linear(F*D -> 1)``, the head FuxiCTR's DCNv2 uses with
  ``model_structure: crossnet_only``;
- it reads the shared flattened embedding ``h`` instead of its own embedding of the raw ids (every student does).

Initialisation: every Linear (cross layers and head) xavier-normal weight, zero bias (FuxiCTR's ``init_weights``,
docs/method.md §6) from the student's generator. Parameters: ``L (FD^2 + FD) + FD + 1``; a Criteo student
(F*D = 624, L = 3) has 1,170,625. State-dict names: ``crossnet.cross_layers.<l>.{weight,bias}``, ``head.*``; matrices
``crossnet.cross_layers.<l>.weight`` are of kind ``cross`` (label ``cross.<l>``); probes ``cross.<l>`` = ``x_{l+1}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import init_linear

__all__ = ["CrossNetArgs", "CrossNetStudent", "CrossNetV2", "check_cross_layers"]


def check_cross_layers(n: int, key: str = "num_cross_layers") -> int:
    """A cross depth >= 1, or a one-line error naming ``key``."""
    if isinstance(n, bool) or int(n) != n or int(n) < 1:
        raise UserError(f"{key} must be an integer >= 1, got {n!r}")
    return int(n)


class CrossNetV2(nn.Module):
    """DCNv2's cross network ``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l`` on a flat input (no head).

    Args:
        input_dim: width ``F*D`` of ``x_0``.
        num_layers: ``L``.
        generator: draws the xavier-normal weights (biases are zero).
    """

    def __init__(self, input_dim: int, num_layers: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.cross_layers = nn.ModuleList(nn.Linear(self.input_dim, self.input_dim) for _ in range(num_layers))
        for layer in self.cross_layers:
            init_linear(layer, generator)

    def forward(self, x0: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tensor:
        """``(B, F*D)`` -> ``x_L`` ``(B, F*D)``; ``x_{l+1}`` goes to ``hidden[f"cross.{l}"]``."""
        x = x0
        for i, layer in enumerate(self.cross_layers):
            x = x0 * layer(x) + x  # (B, FD)
            if hidden is not None:
                hidden[f"cross.{i}"] = x
        return x

    def matrices(self, prefix: str = "") -> List[Matrix]:
        """``W_l`` as ``cross`` matrices ``{prefix}cross_layers.<l>.weight`` labelled ``cross.<l>``."""
        return [Matrix(f"{prefix}cross_layers.{i}.weight", "cross", f"cross.{i}", f"cross.{i}")
                for i in range(len(self.cross_layers))]


@dataclass
class CrossNetArgs:
    """Arguments of the ``crossnet`` student."""

    num_cross_layers: int = 3  # L (the authors' DCNv2 and FuxiCTR default)

    def validate(self) -> None:
        check_cross_layers(self.num_cross_layers)


@register_student("crossnet", CrossNetArgs)
class CrossNetStudent(Student):
    """``CrossNetV2`` on ``h`` followed by ``Linear(F*D -> 1)``."""

    def __init__(self, inp: StudentInput, args: CrossNetArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or CrossNetArgs()
        self.num_cross_layers = check_cross_layers(args.num_cross_layers)
        self.crossnet = CrossNetV2(inp.input_dim, self.num_cross_layers, generator)
        self.head = nn.Linear(inp.input_dim, 1)
        init_linear(self.head, generator)

    @property
    def output_dim(self) -> int:
        """``F*D``: the cross output ``x_L``."""
        return self.inp.input_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, ``x_L`` ``(B, F*D)``); ``x_{l+1}`` goes to ``hidden["cross.<l>"]``."""
        x = self.crossnet(h, hidden)
        return self.head(x).squeeze(-1), x

    def matrices(self) -> List[Matrix]:
        return self.crossnet.matrices("crossnet.")
