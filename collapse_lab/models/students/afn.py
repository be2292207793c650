"""The ``afn`` student: AFN+ (the logarithmic transformation network plus an ensemble DNN; Table VI's "AFN*",
docs/method.md §7).

With ``E = h.view(B, F, D)``, ``L`` = ``logarithmic_neurons`` and ``W`` the ``L x F`` coefficient matrix::

    G   = BN_F( log(max(|E|, 1e-5)) )                       (B, F, D)   BatchNorm1d(F): per field over batch and D
    Y_l = exp( Σ_f W_{l,f} G_f )                            (B, L, D)   neuron l = Π_f |e_f|^{W_{l,f}} (normalised)
    u   = flatten( BN_L(Y) )                                (B, L*D)    BatchNorm1d(L)
    z_afn = w_afn · MLP_afn(u) + b_afn                      the AFN tower  (afn_hidden_units, afn_dropout)
    z_dnn = w_dnn · MLP_dnn(h) + b_dnn                      the ensemble DNN (hidden_units, net_dropout)
    z     = c_1 z_afn + c_2 z_dnn + c_0                     fc: Linear(2 -> 1)

``last`` = ``[MLP_afn(u); MLP_dnn(h)]`` ``(B, H_afn + H_dnn)``, the two towers' last hidden outputs after dropout.

Parameters: ``L*F`` (W, no bias) + ``2F`` + ``2L`` (the two BatchNorms' affine parameters) + the AFN MLP on ``L*D``
inputs with its head + the DNN on ``F*D`` inputs with its head + 3 (fc). Criteo (F = 39, D = 16, L = 1200,
[400, 400, 400] twice, BN): 46,800 + 78 + 2,400 + 8,004,001 + 573,601 + 3 = 8,626,883.

Sources: the authors' ``AFN`` sub-network (src/Backbone.py of salmon1802/KDEF) and FuxiCTR 2.3.10 ``model_zoo/AFN``
(``ensemble_dnn=True``). Where they differ we follow the authors. Deviations and choices, named:

- **one shared embedding for both towers** (the authors' sub-network): FuxiCTR's ensemble DNN reads a second
  embedding table (``embedding_layer2``); here both towers read ``h``.
- **the ensemble DNN is always on** (AFN*; the authors' sub-network has no ``ensemble_dnn`` switch).
- ``eps`` = 1e-5 (``clamp(|e|, min=1e-5)``, as both sources; the AFN paper suggests 1e-7). The two BatchNorms of
  the logarithmic layer are always present (both sources), independent of ``batch_norm``, which switches the
  BatchNorm of both MLP towers (as both sources).
- **defaults**: ``logarithmic_neurons`` 1200 and ``afn_hidden_units`` [400, 400, 400] (FuxiCTR's ``AFN_default``
  template; the class defaults of both sources are 5 and [64, 64, 64]), the ensemble DNN's ``hidden_units``
  [400, 400, 400], ``batch_norm`` true and ``net_dropout`` 0.0 (the KDEF run configuration's values, which the
  ensemble passes from the top-level keys; they name FuxiCTR's ``dnn_hidden_units`` / ``dnn_dropout``),
  ``afn_dropout`` 0.0 (both sources).
- The logarithmic layer's two BatchNorms take ``(B, C, D)`` inputs (statistics per channel over batch and D). They
  go through :func:`~collapse_lab.models.students.layers.batch_norm` like every BatchNorm, but the row-sharded
  data-parallel path (``parallel.ops.RowShard.batch_norm``) reduces over dimension 0 only, so it supports 2-D inputs
  alone: AFN cannot train under the ``data`` parallel step until that path reduces over every dimension but 1.
- the towers' heads, fc and the BatchNorms are not listed in :meth:`AFNStudent.matrices`; W is listed as ``cross``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, batch_norm, check_dropout, check_units, init_linears

__all__ = ["AFNArgs", "AFNStudent", "LOG_EPS"]

#: the floor of |e| before the log (FuxiCTR's and the authors' clamp)
LOG_EPS = 1e-5


@dataclass
class AFNArgs(DNNArgs):
    """Arguments of the ``afn`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` for the ensemble DNN
    (``batch_norm`` switches both MLP towers), plus the logarithmic layer and the AFN tower."""

    logarithmic_neurons: int = 1200  # L, the number of logarithmic neurons
    afn_hidden_units: List[int] = field(default_factory=lambda: [400, 400, 400])  # AFN tower widths (may be empty)
    afn_dropout: float = 0.0  # dropout after every hidden ReLU of the AFN tower

    def validate(self) -> None:
        super().validate()
        check_units(self.afn_hidden_units, "afn_hidden_units")
        check_dropout(self.afn_dropout, "afn_dropout")
        if self.logarithmic_neurons < 1:
            raise UserError(f"logarithmic_neurons must be a positive integer, got {self.logarithmic_neurons}")


@register_student("afn", AFNArgs)
class AFNStudent(Student):
    """AFN+: logarithmic transformation layer -> MLP, plus an ensemble DNN on ``h``, combined by ``Linear(2 -> 1)``.

    State dict: ``log_bn.*``, ``coefficient.weight`` (L x F), ``exp_bn.*``, ``afn_dnn.layers.<j>.*``, ``afn_head.*``,
    ``dnn.layers.<j>.*``, ``head.*``, ``fc.*``.
    """

    def __init__(self, inp: StudentInput, args: AFNArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or AFNArgs()
        args.validate()
        f, d, n_log = inp.num_fields, inp.embedding_dim, int(args.logarithmic_neurons)
        self.logarithmic_neurons = n_log
        self.log_bn = nn.BatchNorm1d(f)
        self.coefficient = nn.Linear(f, n_log, bias=False)
        self.exp_bn = nn.BatchNorm1d(n_log)
        self.afn_dnn = MLPBlock(d * n_log, args.afn_hidden_units, args.afn_dropout, args.batch_norm)
        self.afn_head = nn.Linear(self.afn_dnn.output_dim, 1)
        self.dnn = MLPBlock(inp.input_dim, args.hidden_units, args.net_dropout, args.batch_norm)
        self.head = nn.Linear(self.dnn.output_dim, 1)
        self.fc = nn.Linear(2, 1)
        init_linears(self, generator)

    @property
    def output_dim(self) -> int:
        """``H_afn + H_dnn``: the two towers' last hidden widths."""
        return self.afn_dnn.output_dim + self.dnn.output_dim

    def logarithmic(self, h: Tensor) -> Tensor:
        """The logarithmic transformation layer: ``(B, F*D)`` -> ``u`` ``(B, L*D)`` (neuron-major)."""
        e = h.view(h.shape[0], self.inp.num_fields, self.inp.embedding_dim)  # (B, F, D)
        g = batch_norm(self.log_bn, torch.log(e.abs().clamp(min=LOG_EPS)))  # (B, F, D)
        y = torch.exp(self.coefficient(g.transpose(1, 2)).transpose(1, 2))  # (B, L, D)
        return batch_norm(self.exp_bn, y).flatten(1)  # (B, L*D)

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, ``[MLP_afn(u); MLP_dnn(h)]``); ``hidden[afn_dnn.<j>]`` / ``hidden[dnn.<j>]``
        = each tower's layer j post-ReLU activation."""
        a_afn = self.afn_dnn(self.logarithmic(h), hidden, label="afn_dnn")  # (B, H_afn)
        a_dnn = self.dnn(h, hidden, label="dnn")  # (B, H_dnn)
        logits = torch.cat([self.afn_head(a_afn), self.head(a_dnn)], dim=-1)  # (B, 2)
        return self.fc(logits).squeeze(-1), torch.cat([a_afn, a_dnn], dim=-1)

    def matrices(self) -> List[Matrix]:
        return ([Matrix("coefficient.weight", "cross", "afn.log")]
                + self.afn_dnn.matrices(prefix="afn_dnn.", label="afn_dnn", activation="afn_dnn")
                + self.dnn.matrices(prefix="dnn.", label="dnn", activation="dnn"))
