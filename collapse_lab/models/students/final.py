"""The ``final`` student: FINAL with one block, "FINAL(1B)", student 2 of KDEF_Latest (the authors' ``FinalNet``,
docs/method.md §7).

With the field vectors ``E = (e_1 .. e_F)`` (``h.view(B, F, D)``)::

    G        = W_g E + c_g                     (B, F, D)   over the field axis: G[f] = sum_g W_g[f, g] e_g + c_g[f]
    x        = flatten([E ; E ⊙ G])            (B, 2·F·D)  the gated copy stacked after E along the field axis
    for j = 0 .. L-1:
        u    = W_j a_{j-1} + c_j               (B, H_j)     a_{-1} = x, H_j even
        u1, u2 = u[:, :H_j/2], u[:, H_j/2:]
        v    = [u1, u2 ⊙ u1]                   (B, H_j)     the authors' FinalLinear: chunk (h2, h1), cat [h2, h1 ⊙ h2]
        a_j  = Dropout(ReLU(BatchNorm1d(v)))
    z        = w_head . a_{L-1} + b_head

Initialisation as the authors' model: xavier-normal weights and zero biases for every ``nn.Linear``
(FuxiCTR ``reset_parameters``, drawn from the student's generator), then the gate's own reset
(``FinalGate.reset_custom_params``): ``W_g = 0``, ``c_g = 1``, so the gate starts as the identity copy
``E ⊙ 1``. Whether the authors' runs got that reset depends on the FuxiCTR version (unverified, docs/method.md
§0): ``BaseModel.reset_parameters`` calls ``reset_custom_params`` in FuxiCTR 2.0.4, 2.1.3 and 2.2.3, is a no-op in
2.0.1, and calls ``init_weights`` instead in 2.3.10; in the latter two the gate would keep the xavier init.
collapse-lab follows the authors' code as written (0 / 1).

State-dict names: ``gate.weight`` (F, F), ``gate.bias`` (F,), ``final.<j>.linear.*``, ``final.<j>.bn.*``,
``head.*``; probes ``final.<j>`` (post-ReLU, pre-dropout, ``(B, H_j)``).

Parameters: ``F² + F`` (gate) ``+ sum_j (H_{j-1} + 1 + 2·[bn]) H_j + H_{L-1} + 1`` with ``H_{-1} = 2·F·D``.
Criteo_x4 (F = 39, D = 16, [400, 400, 400], BN): 1,560 + 500,400 + 161,200 + 161,200 + 401 = **824,761**.

Differences from FuxiCTR's FINAL model (model_zoo, ``block_type="1B"``, ``residual_type="concat"``): the same
gate and the same recombination ``[u1, u2 ⊙ u1]`` (FuxiCTR names the halves ``h2, h1``), but FuxiCTR's block has no
hidden activation by default and an optional activation on ``u2``; the authors' ``FinalNet`` applies ReLU after
BatchNorm and none inside the recombination. Deviation from the authors' code: the student reads the shared
embedding ``h`` (B, F*D) and views it as (B, F, D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs, MLPLayer, check_dropout, check_units, init_linears, run_layers

__all__ = ["FinalArgs", "FinalLayer", "FinalStudent", "factorised"]


def factorised(u: Tensor) -> Tensor:
    """``(B, H)`` -> ``[u1, u2 ⊙ u1]`` with ``u1, u2`` the first and second half of ``u`` (H even)."""
    u1, u2 = torch.chunk(u, 2, dim=-1)
    return torch.cat([u1, u2 * u1], dim=-1)


class FinalLayer(MLPLayer):
    """One factorised-interaction layer: ``Linear -> [u1, u2 ⊙ u1] -> BatchNorm1d (optional) -> ReLU -> Dropout``
    (an :class:`~collapse_lab.models.students.layers.MLPLayer` whose ``recombine`` is :func:`factorised`; state
    names ``linear.*``, ``bn.*``)."""

    def recombine(self, u: Tensor) -> Tensor:
        """``(B, H)`` -> ``[u1, u2 ⊙ u1]`` ``(B, H)``."""
        return factorised(u)


@dataclass
class FinalArgs(DNNArgs):
    """Arguments of the ``final`` student (defaults: KDEF_Latest on Criteo_x4, ``net2_dropout``); ``hidden_units``
    must be even and ``batch_norm`` follows every factorised layer."""

    net_dropout: float = 0.2  # dropout after every hidden ReLU (the authors' net2_dropout, Criteo 0.2)

    def validate(self) -> None:
        units = check_units(self.hidden_units)
        if any(u % 2 for u in units):
            raise UserError(f"hidden_units of student 'final' must be even (each layer is split in halves), "
                            f"got {units}")
        super().validate()


@register_student("final", FinalArgs)
class FinalStudent(Student):
    """FINAL(1B): a field gate, factorised-interaction layers, then ``Linear(H_last -> 1)``."""

    def __init__(self, inp: StudentInput, args: FinalArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or FinalArgs()
        args.validate()
        self.input_dim = 2 * inp.input_dim
        self.hidden_units = check_units(args.hidden_units)
        self.net_dropout = check_dropout(args.net_dropout)
        self.batch_norm = bool(args.batch_norm)
        self.gate = nn.Linear(inp.num_fields, inp.num_fields)
        dims = [self.input_dim, *self.hidden_units]
        self.final = nn.ModuleList(FinalLayer(dims[j], dims[j + 1], self.net_dropout, self.batch_norm)
                                   for j in range(len(self.hidden_units)))
        self.head = nn.Linear(self.output_dim, 1)
        init_linears(self, generator)  # gate (FuxiCTR's default pass draws it too; reset below), layers, head
        with torch.no_grad():  # FinalGate.reset_custom_params
            self.gate.weight.zero_()
            self.gate.bias.fill_(1.0)

    @property
    def output_dim(self) -> int:
        """Width of the last factorised layer (``2·F·D`` without layers)."""
        return self.hidden_units[-1] if self.hidden_units else self.input_dim

    def gated_input(self, h: Tensor) -> Tensor:
        """``(B, F*D)`` -> ``flatten([E ; E ⊙ G])`` of shape ``(B, 2·F·D)``."""
        e = h.reshape(h.shape[0], self.inp.num_fields, self.inp.embedding_dim)  # (B, F, D)
        g = self.gate(e.transpose(1, 2)).transpose(1, 2)  # (B, F, D)
        return torch.cat([e, e * g], dim=1).flatten(start_dim=1)  # (B, 2F*D)

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, last layer output after dropout ``(B, H_last)``).

        If ``hidden`` is a dict, layer j's post-ReLU, pre-dropout activation ``(B, H_j)`` goes to ``final.<j>``.
        """
        x = run_layers(self.final, self.gated_input(h), hidden, "final")
        return self.head(x).squeeze(-1), x  # (B,), (B, H_last)

    def matrices(self) -> List[Matrix]:
        return [Matrix("gate.weight", "linear", "gate"),
                *(Matrix(f"final.{j}.linear.weight", "linear", f"final.{j}", f"final.{j}")
                  for j in range(len(self.final)))]
