"""Fusion of the students' outputs into the ensemble logit (paper Eq. 5, §2.3).

* ``mean``:   ``z_t = (1/N) sum_k z_k``  — the authors' code; the teacher is ``sigma(z_t)``.
* ``sum``:    ``z_t = sum_k z_k``.
* ``concat``: ``z_t = w . [a_1; ...; a_N] + b`` with ``a_k`` the last hidden output of student k (after
  dropout, i.e. what the student's own head reads), a Linear head of ``sum_k H_k + 1`` parameters named
  ``fusion.head.*`` (xavier-normal weight, zero bias); ``H_k`` is student k's ``output_dim`` (``N*H_last`` for
  N alike students; a mixed ensemble concatenates members of different widths). The students' own heads then get
  no label signal from a fused-only loss; their logits are still reported, as in the paper.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.layers import init_linear

__all__ = ["FUSIONS", "Fusion"]

FUSIONS = ("mean", "sum", "concat")


class Fusion(nn.Module):
    """Fuse student logits ``(B, N)`` (and, for concat, the last hidden outputs ``(B, N*H)``) into ``(B,)``.

    Example:
        >>> Fusion("mean", 2, 3)(torch.tensor([[1.0, 3.0]])).tolist()
        [2.0]
        >>> Fusion("sum", 2, 3)(torch.tensor([[1.0, 3.0]])).tolist()
        [4.0]
    """

    def __init__(self, kind: str, num_students: int, last_dim: int | Sequence[int],
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if kind not in FUSIONS:
            raise UserError(f"unknown fusion {kind!r}; valid: {', '.join(FUSIONS)}")
        self.kind = kind
        self.head: nn.Linear | None = None
        if kind == "concat":  # last_dim: one width for every student, or each student's width
            widths = [int(last_dim)] * num_students if isinstance(last_dim, int) else [int(w) for w in last_dim]
            if len(widths) != num_students:
                raise ValueError(f"concat fusion: {len(widths)} widths for {num_students} students")
            self.head = nn.Linear(sum(widths), 1)
            init_linear(self.head, generator)

    def forward(self, logits: Tensor, concat_input: Tensor | None = None) -> Tensor:
        """``(B, N)`` logits [+ ``(B, sum_k H_k)``] -> fused logit ``(B,)``."""
        if self.kind == "mean":
            return logits.mean(dim=1)
        if self.kind == "sum":
            return logits.sum(dim=1)
        if concat_input is None:
            raise ValueError("concat fusion needs the students' last hidden outputs")
        return self.head(concat_input).squeeze(-1)  # (B, sum_k H_k) -> (B,)
