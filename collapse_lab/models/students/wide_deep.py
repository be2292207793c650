"""The ``wide_deep`` student: Wide & Deep on the shared embedding (Table VI's "Wide & Deep", docs/method.md §7).

With ``h`` the flat shared embedding ``(B, F*D)``::

    z_wide = w_lr · h + b_lr                                   the wide part: LR(F*D -> 1)
    a_{-1} = h,   a_j = Dropout(ReLU(BN(W_j a_{j-1} + b_j)))   j = 0 .. L-1 (the deep part, an MLPBlock)
    z      = z_wide + w_head · a_{L-1} + b_head                the two logits, summed

``last`` = ``a_{L-1}`` (the deep part's last hidden output after dropout, ``(B, H_last)``; the wide part reads ``h``
itself and has no representation of its own). Parameters: ``(F*D + 1)`` (LR) + the MLP's hidden layers
(``in*out + out``, ``+ 2*out`` with BatchNorm) + ``(H_last + 1)`` (head). Criteo (F = 39, D = 16, [400, 400, 400],
BN): 625 + 573,601 = 574,226.

Sources: the authors' ``WideDeep`` sub-network (src/Backbone.py of salmon1802/KDEF: ``LogisticRegression(input_dim)``
= ``nn.Linear(F*D, 1)`` over the flattened embedding, plus ``MLP_Block(F*D -> hidden -> 1)``, summed) and FuxiCTR
2.3.10 ``model_zoo/WideDeep``. Where they differ we follow the authors. Deviations, named:

- **wide part reads the shared embedding** (the authors' choice): FuxiCTR's wide part is a per-feature-id weight
  table (``LogisticRegression(feature_map, use_bias=False)`` on raw ids); here, as in the authors' sub-network, it is
  ``Linear(F*D -> 1)`` *with* a bias over ``h``, xavier-normal initialised like every Linear (FuxiCTR's
  ``init_weights``).
- **defaults**: ``hidden_units`` [400, 400, 400], ``batch_norm`` true, ``net_dropout`` 0.0, the values the KDEF run
  configuration passes to every student (the ensemble fills these three keys from the top-level config); the
  authors' and FuxiCTR's class defaults ([64, 64, 64], no BatchNorm, dropout 0) are placeholders that configs
  override.
- the LR weight and the logit head are not listed in :meth:`WideDeepStudent.matrices` (1 x F*D and 1 x H vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, init_linears

__all__ = ["WideDeepArgs", "WideDeepStudent"]


@dataclass
class WideDeepArgs(DNNArgs):
    """Arguments of the ``wide_deep`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` for the deep
    part."""


@register_student("wide_deep", WideDeepArgs)
class WideDeepStudent(Student):
    """Wide & Deep: ``LR(h) + head(MLP(h))``. State dict: ``lr.*``, ``dnn.layers.<j>.*``, ``head.*``."""

    def __init__(self, inp: StudentInput, args: WideDeepArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or WideDeepArgs()
        args.validate()
        self.lr = nn.Linear(inp.input_dim, 1)  # the wide part (authors' LogisticRegression over h)
        self.dnn = MLPBlock(inp.input_dim, args.hidden_units, args.net_dropout, args.batch_norm)
        self.head = nn.Linear(self.dnn.output_dim, 1)
        init_linears(self, generator)

    @property
    def output_dim(self) -> int:
        """Width of the deep part's last hidden layer."""
        return self.dnn.output_dim

    def wide(self, h: Tensor) -> Tensor:
        """The wide part's logit ``z_wide = w_lr · h + b_lr`` ``(B,)`` (``deepfm`` adds its FM term here)."""
        return self.lr(h).squeeze(-1)

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, deep part's last output ``(B, H_last)``); ``hidden[dnn.<j>]`` =
        deep layer j's post-ReLU activation."""
        last = self.dnn(h, hidden, label="dnn")  # (B, H_last)
        return self.wide(h) + self.head(last).squeeze(-1), last  # (B,), (B, H_last)

    def matrices(self) -> List[Matrix]:
        return self.dnn.matrices(prefix="dnn.", label="dnn", activation="dnn")
