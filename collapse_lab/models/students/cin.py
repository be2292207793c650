"""The ``cin`` student: xDeepFM's Compressed Interaction Network with its own logit head (docs/method.md §7).

With ``X^0 = h.view(B, F, D)`` and ``H_{-1} = F``, layer ``k = 0 .. K-1`` maps ``X^k`` ``(B, H_{k-1}, D)`` to
``X^{k+1}`` ``(B, H_k, D)``::

    Z^k[b, f*H_{k-1} + m, d] = X^0[b, f, d] · X^k[b, m, d]                  (B, F*H_{k-1}, D)  outer product per d
    X^{k+1}[b, o, d] = Σ_c W^k[o, c, 0] Z^k[b, c, d] + c^k[o]                Conv1d(F*H_{k-1} -> H_k, kernel 1)
    p^k = Σ_d X^{k+1}[:, :, d]                                              (B, H_k)   sum pooling
    z = w_head · [p^0, …, p^{K-1}] + b_head                                  Linear(Σ_k H_k -> 1)

This is ``CompressedInteractionNet`` of the authors' ``src/Backbone.py`` (identical to FuxiCTR 2.3.10's
``layers/interactions/compressed_interaction_net.py``): no activation after the convolution (the xDeepFM paper's
identity), no split-half direct connections (every layer's whole map is pooled and fed to the next),
``cin_hidden_units`` default [16, 16, 16] (the authors' xDeepFM default). The head is theirs (``fc``).

Deviation: the student reads the shared flattened embedding ``h`` instead of embedding the raw ids itself.

Initialisation: Conv1d and Linear weights xavier-normal, biases zero (FuxiCTR's ``init_weights`` covers both
``nn.Linear`` and ``nn.Conv1d``; docs/method.md §6), drawn from the student's generator. Parameters:
``Σ_k (H_k F H_{k-1} + H_k) + Σ_k H_k + 1``; a Criteo student (F = 39, [16, 16, 16]) has 44,401.

State-dict names: ``cin.layers.<k>.{weight,bias}`` (weight ``(H_k, F*H_{k-1}, 1)``), ``cin.head.*``. The conv
weights are ``cross`` matrices labelled ``cin.<k>``; they are 3-D with a trailing kernel axis of 1, which the
analysis reads as the 2-D ``(H_k, F*H_{k-1})`` matrix. Probes ``cin.<k>`` = ``X^{k+1}`` flattened to
``(B, H_k*D)``; ``last`` = the pooled ``[p^0, …, p^{K-1}]`` ``(B, Σ_k H_k)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import check_units, init_linear

__all__ = ["CINArgs", "CINStudent", "CompressedInteractionNet", "check_cin_units", "init_conv1d"]


@torch.no_grad()
def init_conv1d(conv: nn.Conv1d, generator: torch.Generator | None = None) -> None:
    """Xavier-normal weight, zero bias (FuxiCTR's initialisation of every Conv1d layer)."""
    nn.init.xavier_normal_(conv.weight, generator=generator)
    if conv.bias is not None:
        conv.bias.zero_()


def check_cin_units(units: Sequence[int], key: str = "cin_hidden_units") -> List[int]:
    """A non-empty list of positive widths, or a one-line error naming ``key``."""
    out = check_units(units, key)
    if not out:
        raise UserError(f"{key} must list at least one layer width, got []")
    return out


class CompressedInteractionNet(nn.Module):
    """CIN layers plus the logit head over the sum-pooled feature maps.

    Args:
        num_fields: ``F``.
        cin_hidden_units: ``[H_0, …, H_{K-1}]``.
        generator: draws the xavier-normal weights (biases are zero).
    """

    def __init__(self, num_fields: int, cin_hidden_units: Sequence[int],
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_fields = int(num_fields)
        self.cin_hidden_units = check_cin_units(cin_hidden_units)
        widths = [self.num_fields, *self.cin_hidden_units]
        self.layers = nn.ModuleList(nn.Conv1d(self.num_fields * widths[k], widths[k + 1], kernel_size=1)
                                    for k in range(len(self.cin_hidden_units)))
        self.head = nn.Linear(self.output_dim, 1)
        for conv in self.layers:
            init_conv1d(conv, generator)
        init_linear(self.head, generator)

    @property
    def output_dim(self) -> int:
        """``Σ_k H_k``: width of the pooled maps."""
        return sum(self.cin_hidden_units)

    def forward(self, x0: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``X^0`` ``(B, F, D)`` -> (logit ``(B,)``, pooled maps ``(B, Σ_k H_k)``)."""
        b, _, d = x0.shape
        x = x0
        pooled = []
        for k, conv in enumerate(self.layers):
            z = (x0.unsqueeze(2) * x.unsqueeze(1)).reshape(b, -1, d)  # (B, F*H_{k-1}, D), index f*H_{k-1} + m
            x = conv(z)  # (B, H_k, D)
            if hidden is not None:
                hidden[f"cin.{k}"] = x.flatten(1)
            pooled.append(x.sum(dim=-1))  # (B, H_k)
        p = torch.cat(pooled, dim=-1)
        return self.head(p).squeeze(-1), p

    def matrices(self, prefix: str = "") -> List[Matrix]:
        """The conv weights ``(H_k, F*H_{k-1}, 1)`` as ``cross`` matrices labelled ``cin.<k>``."""
        return [Matrix(f"{prefix}layers.{k}.weight", "cross", f"cin.{k}", f"cin.{k}") for k in range(len(self.layers))]


@dataclass
class CINArgs:
    """Arguments of the ``cin`` student."""

    cin_hidden_units: List[int] = field(default_factory=lambda: [16, 16, 16])  # H_0 .. H_{K-1}

    def validate(self) -> None:
        check_cin_units(self.cin_hidden_units)


@register_student("cin", CINArgs)
class CINStudent(Student):
    """A CIN student: ``CompressedInteractionNet`` on ``h.view(B, F, D)`` with its own head."""

    def __init__(self, inp: StudentInput, args: CINArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or CINArgs()
        self.cin = CompressedInteractionNet(inp.num_fields, args.cin_hidden_units, generator)

    @property
    def output_dim(self) -> int:
        """``Σ_k H_k``."""
        return self.cin.output_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, pooled maps ``(B, Σ_k H_k)``); ``X^{k+1}`` goes to ``hidden["cin.<k>"]``."""
        return self.cin(h.reshape(h.shape[0], self.inp.num_fields, self.inp.embedding_dim), hidden)

    def matrices(self) -> List[Matrix]:
        return self.cin.matrices("cin.")
