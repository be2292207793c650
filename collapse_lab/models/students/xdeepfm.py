"""The ``xdeepfm`` student: xDeepFM = LR + CIN + DNN on the shared embedding, logits summed (docs/method.md §7).

    z_lr  = w_lr · h + b_lr                                      Linear(F*D -> 1)
    z_cin, p = CIN(h.view(B, F, D))                              :mod:`.cin`, p = pooled maps (B, Σ_k H_k)
    a     = DNN(h)                                                MLP_Block, Linear -> BN -> ReLU -> Dropout
    z_dnn = w_dnn · a + b_dnn                                     Linear(H_last -> 1), the DNN's output layer
    z     = z_lr + z_cin + z_dnn

This is ``xDeepFM`` of the authors' ``src/Backbone.py`` (FuxiCTR 2.3.10's xDeepFM model has the same three parts,
but its LR reads first-order weights of the raw ids): the LR part is a ``Linear`` over the flattened embedding,
the DNN ends in its own ``Linear(H_last -> 1)`` (``MLP_Block(output_dim=1)``) and the CIN in its ``fc``.

``last`` (for the concat fusion) is ``[a ; p ; h]`` ``(B, H_last + Σ_k H_k + F*D)``: ``z`` is exactly an affine
function of it (the three heads side by side), so it is the representation before the logit.

Defaults: ``hidden_units`` [400, 400, 400], ``net_dropout`` 0.1, ``batch_norm`` true (the authors' KDEF configs,
``config/model_config.yaml``; their ``xDeepFM`` constructor defaults are [64, 64, 64], 0, false and the Table VI
settings were not released), ``cin_hidden_units`` [16, 16, 16] (their default). Deviation: the student reads
the shared flattened embedding ``h`` instead of embedding the raw ids itself.

Initialisation: every Linear and Conv1d xavier-normal, zero bias (FuxiCTR's ``init_weights``, docs/method.md §6)
from the student's generator, in the order DNN, DNN head, LR, CIN. Parameters: DNN with head
``Σ_j (H_j H_{j-1} + 3 H_j) + H_last + 1`` (H_{-1} = F*D, BN adds 2 H_j), LR ``F*D + 1``, CIN as in :mod:`.cin`.
A Criteo student (F = 39, D = 16, [400, 400, 400] with BN, [16, 16, 16]) has 573,601 + 625 + 44,401 = 618,627.

State-dict names: ``dnn.layers.<j>.*`` (``linear`` matrices labelled ``dnn.<j>``), ``dnn_head.*``, ``lr.*`` (a
``1 x F*D`` vector, not listed), ``cin.layers.<k>.*`` (``cross`` matrices labelled ``cin.<k>``, 3-D with a
kernel axis of 1), ``cin.head.*``. Probes: ``dnn.<j>`` (post-ReLU, pre-dropout ``(B, H_j)``) and ``cin.<k>``
(``X^{k+1}`` flattened, ``(B, H_k*D)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.cin import CompressedInteractionNet, check_cin_units
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, init_linears

__all__ = ["XDeepFMArgs", "XDeepFMStudent"]


@dataclass
class XDeepFMArgs(DNNArgs):
    """Arguments of the ``xdeepfm`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` for the DNN, plus
    the CIN's widths."""

    net_dropout: float = 0.1  # dropout after every hidden ReLU of the DNN
    cin_hidden_units: List[int] = field(default_factory=lambda: [16, 16, 16])  # CIN widths H_0 .. H_{K-1}

    def validate(self) -> None:
        super().validate()
        check_cin_units(self.cin_hidden_units)


@register_student("xdeepfm", XDeepFMArgs)
class XDeepFMStudent(Student):
    """xDeepFM: the sum of an LR logit, a CIN logit and a DNN logit."""

    def __init__(self, inp: StudentInput, args: XDeepFMArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or XDeepFMArgs()
        args.validate()
        fd = inp.input_dim
        self.dnn = MLPBlock(fd, args.hidden_units, args.net_dropout, args.batch_norm)
        self.dnn_head = nn.Linear(self.dnn.output_dim, 1)
        self.lr = nn.Linear(fd, 1)
        init_linears(self, generator)  # DNN, DNN head, LR (the CIN below initialises itself)
        self.cin = CompressedInteractionNet(inp.num_fields, args.cin_hidden_units, generator)

    @property
    def output_dim(self) -> int:
        """``H_last + Σ_k H_k + F*D``: ``[a ; p ; h]``."""
        return self.dnn.output_dim + self.cin.output_dim + self.inp.input_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``z_lr + z_cin + z_dnn`` ``(B,)``, ``[a ; p ; h]`` ``(B, output_dim)``)."""
        z_lr = self.lr(h).squeeze(-1)
        z_cin, p = self.cin(h.reshape(h.shape[0], self.inp.num_fields, self.inp.embedding_dim), hidden)
        a = self.dnn(h, hidden, label="dnn")
        z_dnn = self.dnn_head(a).squeeze(-1)
        return z_lr + z_cin + z_dnn, torch.cat([a, p, h], dim=-1)

    def matrices(self) -> List[Matrix]:
        return self.dnn.matrices("dnn.", "dnn", "dnn") + self.cin.matrices("cin.")
