"""The ``dcnv2`` student: DCNv2, a cross network and a DNN on the shared embedding (docs/method.md §7).

With ``CrossNet(x) = x_L`` of :mod:`.crossnet` (``x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l``) and ``DNN`` FuxiCTR's
``MLP_Block`` without output layer (Linear -> BatchNorm1d -> ReLU -> Dropout per hidden layer, :mod:`.layers`)::

    parallel       u = [DNN(h) ; CrossNet(h)]        (B, H_last + F*D)
    stacked        u = DNN(CrossNet(h))              (B, H_last)
    crossnet_only  u = CrossNet(h)                   (B, F*D)
    z = w_head · u + b_head

``parallel`` is the authors' ``DCNv2`` (``src/Backbone.py``), the only structure they define; ``stacked`` and
``crossnet_only`` follow FuxiCTR 2.3.10's ``model_zoo/DCNv2`` (which also has ``stacked_parallel``, not offered
here). Where the two differ the authors win: the parallel concatenation is ``[DNN ; Cross]`` (FuxiCTR: ``[Cross ;
DNN]``; only the order of the head's columns differs), and one ``hidden_units`` list serves the one DNN (FuxiCTR:
``stacked_dnn_hidden_units`` / ``parallel_dnn_hidden_units``).

Defaults: ``hidden_units`` [400, 400, 400], ``net_dropout`` 0.1 and ``batch_norm`` true (the authors' KDEF configs,
``config/model_config.yaml``; their ``DCNv2`` constructor defaults are 0 / false and the Table VI settings were
not released), ``num_cross_layers`` 3 (both codes' default). Deviations:

- FuxiCTR's ``use_low_rank_mixture`` (CrossNetMix, a mixture of low-rank experts) is not offered: the authors do
  not use it, and an argument ``use_low_rank`` is refused as unknown;
- the student reads the shared flattened embedding ``h`` instead of embedding the raw ids itself.

Initialisation: every Linear xavier-normal, zero bias (FuxiCTR's ``init_weights``, docs/method.md §6) from the
student's generator, in the order cross layers, DNN, head. Parameters (FD = F*D, H_{-1} = FD; BN adds 2 H_j per
layer): cross ``L (FD^2 + FD)``; DNN ``Σ_j (H_j H_{j-1} + H_j + 2 H_j)`` (input ``x_L`` when stacked); head
``dim(u) + 1``. A Criteo parallel student (FD = 624, L = 3, [400, 400, 400], BN) has 1,744,225.

State-dict names: ``crossnet.cross_layers.<l>.*`` (matrices of kind ``cross``, labels ``cross.<l>``),
``dnn.layers.<j>.linear.*`` / ``.bn.*`` (kind ``linear``, labels ``dnn.<j>``), ``head.*``. Probes: ``cross.<l>``
= ``x_{l+1}`` ``(B, F*D)``, ``dnn.<j>`` = the post-ReLU, pre-dropout activation ``(B, H_j)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.crossnet import CrossNetV2, check_cross_layers
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, check_units, init_linear, init_linears

__all__ = ["DCNv2Args", "DCNv2Student", "MODEL_STRUCTURES"]

#: the DCNv2 wirings offered
MODEL_STRUCTURES = ("parallel", "stacked", "crossnet_only")


@dataclass
class DCNv2Args(DNNArgs):
    """Arguments of the ``dcnv2`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` for the DNN (unused
    by crossnet_only), plus the wiring and the cross network."""

    net_dropout: float = 0.1  # dropout after every hidden ReLU of the DNN
    model_structure: str = "parallel"  # parallel | stacked | crossnet_only
    num_cross_layers: int = 3  # L

    def validate(self) -> None:
        if self.model_structure not in MODEL_STRUCTURES:
            raise UserError(f"model_structure must be one of {', '.join(MODEL_STRUCTURES)}, "
                            f"got {self.model_structure!r}")
        units = check_units(self.hidden_units)
        if not units and self.model_structure != "crossnet_only":
            raise UserError(f"hidden_units must list at least one width for model_structure "
                            f"{self.model_structure!r}, got []")
        super().validate()
        check_cross_layers(self.num_cross_layers)


@register_student("dcnv2", DCNv2Args)
class DCNv2Student(Student):
    """DCNv2: ``CrossNetV2`` and an ``MLPBlock`` wired by ``model_structure``, then ``Linear(dim(u) -> 1)``."""

    def __init__(self, inp: StudentInput, args: DCNv2Args | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or DCNv2Args()
        args.validate()
        self.model_structure = args.model_structure
        fd = inp.input_dim
        self.crossnet = CrossNetV2(fd, args.num_cross_layers, generator)
        self.dnn: MLPBlock | None = None
        if self.model_structure != "crossnet_only":
            self.dnn = MLPBlock(fd, args.hidden_units, args.net_dropout, args.batch_norm)
            init_linears(self.dnn, generator)
        self.head = nn.Linear(self.output_dim, 1)
        init_linear(self.head, generator)

    @property
    def output_dim(self) -> int:
        """Width of ``u``: ``H_last + F*D`` (parallel), ``H_last`` (stacked), ``F*D`` (crossnet_only)."""
        fd = self.inp.input_dim
        if self.dnn is None:
            return fd
        return self.dnn.output_dim + (fd if self.model_structure == "parallel" else 0)

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, ``u`` ``(B, output_dim)``)."""
        cross = self.crossnet(h, hidden)  # (B, FD)
        if self.model_structure == "parallel":
            u = torch.cat([self.dnn(h, hidden, label="dnn"), cross], dim=-1)
        elif self.model_structure == "stacked":
            u = self.dnn(cross, hidden, label="dnn")
        else:
            u = cross
        return self.head(u).squeeze(-1), u

    def matrices(self) -> List[Matrix]:
        out = self.crossnet.matrices("crossnet.")
        if self.dnn is not None:
            out += self.dnn.matrices("dnn.", "dnn", "dnn")
        return out
