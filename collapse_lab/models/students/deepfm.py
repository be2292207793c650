"""The ``deepfm`` student: DeepFM on the shared embedding (a Table III backbone, docs/method.md §7).

With ``h`` the flat shared embedding ``(B, F*D)`` and ``e_f`` its field vectors (``h.view(B, F, D)``)::

    z_lr  = w_lr · h + b_lr                                              first order: LR(F*D -> 1)
    z_fm  = 1/2 Σ_d [ (Σ_f e_{f,d})² − Σ_f e_{f,d}² ]  = Σ_{f<g} <e_f, e_g>   second order, no parameters
    a_{-1} = h,   a_j = Dropout(ReLU(BN(W_j a_{j-1} + b_j)))             j = 0 .. L-1 (an MLPBlock)
    z      = z_lr + z_fm + w_head · a_{L-1} + b_head                     summed

``last`` = ``a_{L-1}`` (the DNN's last hidden output after dropout, ``(B, H_last)``). Parameters: ``(F*D + 1)`` (LR)
+ the MLP's hidden layers + ``(H_last + 1)`` (head); the FM term has none. Criteo (F = 39, D = 16, [400, 400, 400],
BN): 625 + 573,601 = 574,226 (the same count as ``wide_deep``).

Source: FuxiCTR 2.3.10 ``model_zoo/DeepFM`` (``FactorizationMachine`` = ``InnerProductInteraction(output=
"product_sum")`` + ``LogisticRegression(use_bias=True)``, plus ``MLP_Block(F*D -> hidden -> 1)``, summed); the
authors' src/Backbone.py has no DeepFM sub-network. Deviations, named:

- **first order reads the shared embedding**: FuxiCTR's LR is a per-feature-id weight table on raw ids plus a bias;
  here it is ``Linear(F*D -> 1)`` with a bias over ``h`` (as the authors' ``LogisticRegression`` sub-network), so
  the student sees only the shared embedding, xavier-normal initialised like every Linear.
- **defaults**: ``hidden_units`` [400, 400, 400], ``batch_norm`` true, ``net_dropout`` 0.0 (the KDEF run
  configuration's values, which the ensemble passes from the top-level keys); FuxiCTR's class defaults ([64, 64, 64],
  no BatchNorm) are placeholders that configs override.
- the LR weight and the logit head are not listed in :meth:`DeepFMStudent.matrices`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from collapse_lab.models.students.base import StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs
from collapse_lab.models.students.wide_deep import WideDeepStudent

__all__ = ["DeepFMArgs", "DeepFMStudent", "fm_product_sum"]


def fm_product_sum(e: Tensor) -> Tensor:
    """FM's second-order term ``1/2 Σ_d [(Σ_f e_{f,d})² − Σ_f e_{f,d}²]`` of ``e`` ``(B, F, D)`` -> ``(B,)``."""
    square_of_sum = e.sum(dim=1).pow(2)  # (B, D)
    sum_of_square = e.pow(2).sum(dim=1)  # (B, D)
    return 0.5 * (square_of_sum - sum_of_square).sum(dim=-1)


@dataclass
class DeepFMArgs(DNNArgs):
    """Arguments of the ``deepfm`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` for the DNN."""


@register_student("deepfm", DeepFMArgs)
class DeepFMStudent(WideDeepStudent):
    """DeepFM: ``LR(h) + FM(h) + head(MLP(h))``, a :class:`~.wide_deep.WideDeepStudent` whose wide part adds the FM
    term. State dict: ``lr.*``, ``dnn.layers.<j>.*``, ``head.*``."""

    def __init__(self, inp: StudentInput, args: DeepFMArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp, args or DeepFMArgs(), generator)

    def wide(self, h: Tensor) -> Tensor:
        """First and second order: ``z_lr + z_fm`` ``(B,)``."""
        e = h.view(h.shape[0], self.inp.num_fields, self.inp.embedding_dim)  # (B, F, D)
        return self.lr(h).squeeze(-1) + fm_product_sum(e)
