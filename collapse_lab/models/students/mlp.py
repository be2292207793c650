"""The ``mlp`` student: FuxiCTR's ``MLP_Block`` followed by a logit head (the KDEF_MLP students, docs/method.md §2.2).

    for j = 0 .. L-1:  a_j = Dropout(ReLU(BatchNorm1d(W_j a_{j-1} + b_j)))      a_{-1} = h
    z = w_head . a_{L-1} + b_head

Every ``nn.Linear`` gets xavier-normal weights and zero bias (FuxiCTR ``init_weights``, docs/method.md §6), drawn from
the student's own generator, so students differ by design. State-dict names below a student are
``layers.<j>.linear.*``, ``layers.<j>.bn.*`` and ``head.*`` (``students.<k>.`` inside the ensemble). One Criteo student
(624 -> 400 -> 400 -> 400 -> 1 with BatchNorm) has 573,601 parameters (docs/method.md §8.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, check_dropout, check_units, init_linears, run_layers

__all__ = ["MLPArgs", "MLPStudent"]


@dataclass
class MLPArgs(DNNArgs):
    """Arguments of the ``mlp`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` as they are."""


@register_student("mlp", MLPArgs)
class MLPStudent(Student):
    """An MLP student: hidden ``MLPLayer`` s then ``Linear(H_last -> 1)`` (a logistic regression without layers)."""

    def __init__(self, inp: StudentInput, args: MLPArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or MLPArgs()
        self.input_dim = inp.input_dim
        self.hidden_units = check_units(args.hidden_units)
        self.net_dropout = check_dropout(args.net_dropout)
        self.batch_norm = bool(args.batch_norm)
        self.layers = MLPBlock(self.input_dim, self.hidden_units, self.net_dropout, self.batch_norm).layers
        self.head = nn.Linear(self.output_dim, 1)
        init_linears(self, generator)  # hidden layers, then head

    @property
    def output_dim(self) -> int:
        """Width of the last hidden layer (the input of the head)."""
        return self.hidden_units[-1] if self.hidden_units else self.input_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, last hidden output after dropout ``(B, H_last)``).

        If ``hidden`` is a dict, layer j's post-ReLU, pre-dropout activation ``(B, H_j)`` goes to ``layers.<j>``.
        """
        x = run_layers(self.layers, h, hidden, "layers")
        return self.head(x).squeeze(-1), x  # (B,), (B, H_last)

    def matrices(self) -> List[Matrix]:
        return [Matrix(f"layers.{j}.linear.weight", "linear", f"mlp.{j}", f"layers.{j}")
                for j in range(len(self.layers))]
