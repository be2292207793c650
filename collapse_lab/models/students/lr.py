"""The ``lr`` student: logistic regression over the shared embedding (the authors' ``LogisticRegression``
sub-network, docs/method.md §7).

    z = w · h + b          h = the flat shared embedding (B, F*D);  w ∈ ℝ^{F*D}, b ∈ ℝ

``last`` is ``h`` itself (the student has no hidden representation), so concat fusion reads the embedding input.
Parameters: F*D + 1 (Criteo, F = 39, D = 16: 625). The weight is initialised xavier-normal, the bias zero, from the
student's generator (FuxiCTR's ``init_weights``). Its one matrix, the 1 x F*D weight, is listed as ``linear``
(label ``lr``): a rank-one matrix whose spectrum is its norm, reported so that every student has a row in
``spectrum``. No arguments.

This module is also the worked example of adding a student (docs/architecture.md §3): this file and one import
line in ``students/__init__.py`` are all it took; ``tests/test_students_registry.py`` then runs it through the
ensemble, the manifest and mixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import init_linear

__all__ = ["LRArgs", "LRStudent"]


@dataclass
class LRArgs:
    """The ``lr`` student has no arguments."""


@register_student("lr", LRArgs)
class LRStudent(Student):
    """``Linear(F*D -> 1)`` over the shared embedding. State dict: ``lr.weight``, ``lr.bias``."""

    def __init__(self, inp: StudentInput, args: LRArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        self.lr = nn.Linear(inp.input_dim, 1)
        init_linear(self.lr, generator)

    @property
    def output_dim(self) -> int:
        """``F*D``: ``last`` is the input."""
        return self.inp.input_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, ``h``); nothing to probe."""
        return self.lr(h).squeeze(-1), h

    def matrices(self) -> List[Matrix]:
        return [Matrix("lr.weight", "linear", "lr")]
