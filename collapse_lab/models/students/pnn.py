"""The ``pnn`` student: IPNN, student 1 of KDEF_Latest (the authors' ``ProductNetwork``, docs/method.md §7).

With the field vectors ``e_1 .. e_F`` (``h.view(B, F, D)``)::

    p     = [<e_i, e_j>  for i < j]                         (B, F(F-1)/2)   pairs in row-major upper-triangle order
    x     = [flatten(e_1 .. e_F), p]                        (B, F*D + F(F-1)/2)
    a_j   = Dropout(ReLU(BatchNorm1d(W_j a_{j-1} + c_j)))   a_{-1} = x,  j = 0 .. L-1
    z     = w_head . a_{L-1} + b_head

as FuxiCTR's ``InnerProductInteraction(output="inner_product")`` followed by ``MLP_Block(output_dim=1)`` (the
hidden layers are :class:`~collapse_lab.models.students.layers.MLPLayer` s, the output layer is ``head``). Every
``nn.Linear`` gets xavier-normal weights and zero bias from the student's generator (FuxiCTR ``reset_parameters``,
docs/method.md §6). The inner-product layer has no trainable parameters (FuxiCTR keeps its upper-triangle mask as a
``requires_grad=False`` parameter, which its parameter count skips; here it is a non-persistent buffer, so the
state dict holds only trainable weights and BatchNorm statistics).

State-dict names: ``dnn.<j>.linear.*``, ``dnn.<j>.bn.*``, ``head.*``; probes ``dnn.<j>`` (post-ReLU, pre-dropout).

Parameters: with ``P = F*D + F(F-1)/2`` and widths ``H_0 .. H_{L-1}``,
``sum_j (H_{j-1} + 1 + 2·[bn]) H_j + H_{L-1} + 1`` (``H_{-1} = P``). Criteo_x4 (F = 39, D = 16, [400, 400, 400],
BN): P = 624 + 741 = 1,365 and **870,001** parameters.

Deviations from the authors' code: none in the formulas; the student reads the shared embedding ``h`` (B, F*D)
and views it as (B, F, D) instead of receiving the 3-D embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, check_dropout, check_units, init_linears, run_layers

__all__ = ["PNNArgs", "PNNStudent", "inner_products"]


def inner_products(e: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``(B, F, D)`` field vectors -> ``(B, F(F-1)/2)`` inner products ``<e_i, e_j>`` for the pairs ``(rows, cols)``."""
    gram = torch.bmm(e, e.transpose(1, 2))  # (B, F, F)
    return gram[:, rows, cols]


@dataclass
class PNNArgs(DNNArgs):
    """Arguments of the ``pnn`` student (defaults: KDEF_Latest on Criteo_x4, ``net1_dropout``)."""

    net_dropout: float = 0.1  # dropout after every hidden ReLU (the authors' net1_dropout)


@register_student("pnn", PNNArgs)
class PNNStudent(Student):
    """IPNN: field-pair inner products beside the flat embedding, an MLP, then ``Linear(H_last -> 1)``."""

    def __init__(self, inp: StudentInput, args: PNNArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or PNNArgs()
        f = inp.num_fields
        rows, cols = torch.triu_indices(f, f, offset=1)  # (0,1), (0,2), ..., (F-2,F-1): FuxiCTR's masked_select order
        self.register_buffer("pair_rows", rows, persistent=False)
        self.register_buffer("pair_cols", cols, persistent=False)
        self.num_pairs = f * (f - 1) // 2
        self.input_dim = inp.input_dim + self.num_pairs
        self.hidden_units = check_units(args.hidden_units)
        self.net_dropout = check_dropout(args.net_dropout)
        self.batch_norm = bool(args.batch_norm)
        self.dnn = MLPBlock(self.input_dim, self.hidden_units, self.net_dropout, self.batch_norm).layers
        self.head = nn.Linear(self.output_dim, 1)
        init_linears(self, generator)  # hidden layers, then head

    @property
    def output_dim(self) -> int:
        """Width of the last hidden layer (the MLP input width without layers)."""
        return self.hidden_units[-1] if self.hidden_units else self.input_dim

    def dense_input(self, h: Tensor) -> Tensor:
        """``(B, F*D)`` -> the MLP input ``[h, p]`` of shape ``(B, F*D + F(F-1)/2)``."""
        e = h.reshape(h.shape[0], self.inp.num_fields, self.inp.embedding_dim)  # (B, F, D)
        return torch.cat([h, inner_products(e, self.pair_rows, self.pair_cols)], dim=1)

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, last hidden output after dropout ``(B, H_last)``).

        If ``hidden`` is a dict, layer j's post-ReLU, pre-dropout activation ``(B, H_j)`` goes to ``dnn.<j>``.
        """
        x = run_layers(self.dnn, self.dense_input(h), hidden, "dnn")
        return self.head(x).squeeze(-1), x  # (B,), (B, H_last)

    def matrices(self) -> List[Matrix]:
        return [Matrix(f"dnn.{j}.linear.weight", "linear", f"dnn.{j}", f"dnn.{j}") for j in range(len(self.dnn))]
