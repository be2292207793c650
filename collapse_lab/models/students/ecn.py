"""The ``ecn`` student: the exponential cross network with one head, student 3 of KDEF_Latest (the authors'
``ExponentialCrossNetwork``, from their FCN / DCNv3; docs/method.md §7).

With the field vectors ``e_1 .. e_F`` (``h.view(B, F, D)``) split into halves ``e_f = [e_f', e_f'']`` of widths
``ceil(D/2)`` and ``floor(D/2)`` (``torch.tensor_split``), and ``n = F·D`` (must be even)::

    x_0      = [e_1' .. e_F', e_1'' .. e_F'']             (B, n)     every field's first half comes first
    for i = 0 .. L-1:
        H    = BatchNorm1d(1)(W_i x_i)                    (B, n/2)   W_i: n -> n/2, no bias; ONE channel: mean and
                                                                     variance over all B·n/2 values, scalar affine
        m    = ReLU(LayerNorm(H))                         (B, n/2)   the self-mask
        H'   = [H, H ⊙ m]                                 (B, n)
        x_{i+1} = Dropout(x_i ⊙ (H' + b_i) + x_i)         (B, n)     b_i ~ U[0, 1) at init
    z        = w_head . x_L + b_head

Initialisation as the authors' model: ``b_0 .. b_{L-1}`` uniform on [0, 1) (drawn in the constructor, before
FuxiCTR's ``reset_parameters``, which does not touch them), then xavier-normal ``W_i`` and ``w_head`` (zero
``b_head``), all from the student's generator in that order; LayerNorm and BatchNorm start at weight 1, bias 0.

State-dict names: ``cross.<i>.linear.weight`` (n/2, n), ``cross.<i>.bias`` (n,), ``cross.<i>.ln.*``,
``cross.<i>.bn.*``, ``head.*``; probes ``cross.<i>`` (``x_{i+1}`` before dropout, ``(B, n)``).

Parameters: per layer ``n·n/2 + n + 2·(n/2) + 2·[bn]``, plus ``n + 1`` for the head. Criteo_x4 (F = 39, D = 16,
n = 624, 4 layers, BN): 4 × (194,688 + 624 + 624 + 2) + 625 = **784,377**.

Differences from FuxiCTR's ECN (model_zoo DCNv3 ``ExponentialCrossNetwork``, which also draws ``b_i`` U[0, 1)
and uses ``BatchNorm1d(num_heads)``): one head only (the authors' ``tensor_split(x, 1)``; the halves-first
rearrangement is done by DCNv3's multi-head embedding there and inside the network here), LayerNorm always on (a
switch in FuxiCTR), BatchNorm on (FuxiCTR's default is off; EKTF_L passes ``batch_norm=True``), and the head
``Linear(n -> 1)`` applied to ``x_L`` directly (``.mean`` over the single head is the identity).

Deviation from the authors' code: the student reads the shared embedding ``h`` (B, F*D). Under a data-parallel
row shard (docs/architecture.md §11) the one-channel BatchNorm has no whole-batch form in
:mod:`collapse_lab.models.shard` yet, so training there is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models import shard
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import check_dropout, dropout, init_linears

__all__ = ["ECNArgs", "ECNLayer", "ECNStudent", "halves_first"]


def halves_first(h: Tensor, num_fields: int, embedding_dim: int) -> Tensor:
    """``(B, F*D)`` field-major -> ``(B, F*D)``: every field's first half (``ceil(D/2)``), then every second half."""
    e = h.reshape(h.shape[0], num_fields, embedding_dim)  # (B, F, D)
    first, second = torch.tensor_split(e, 2, dim=-1)  # (B, F, ceil(D/2)), (B, F, floor(D/2))
    return torch.cat([first.flatten(start_dim=1), second.flatten(start_dim=1)], dim=1)


def scalar_batch_norm(bn: nn.BatchNorm1d, u: Tensor) -> Tensor:
    """BatchNorm1d(1) of ``(B, m)`` as the authors apply it to ``(B, 1, m)``: one mean and variance over all values."""
    if bn.training and shard.current() is not None:
        raise UserError("student 'ecn' with batch_norm=true cannot train under --parallel data: its BatchNorm1d(1) "
                        "pools all F*D/2 values of every row; use --parallel none or batch_norm=false")
    return bn(u.unsqueeze(1)).squeeze(1)


class ECNLayer(nn.Module):
    """One exponential cross layer: ``x ⊙ ([H, H ⊙ ReLU(LN(H))] + b) + x`` with ``H = BN(W x)``."""

    def __init__(self, width: int, batch_norm: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width // 2, bias=False)
        self.bias = nn.Parameter(torch.zeros(width))
        self.ln = nn.LayerNorm(width // 2)
        self.bn = nn.BatchNorm1d(1) if batch_norm else None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, n)`` -> ``(B, n)`` (before dropout)."""
        u = self.linear(x)  # (B, n/2)
        if self.bn is not None:
            u = scalar_batch_norm(self.bn, u)
        mask = F.relu(self.ln(u))  # (B, n/2)
        return x * (torch.cat([u, u * mask], dim=-1) + self.bias) + x


@dataclass
class ECNArgs:
    """Arguments of the ``ecn`` student (defaults: KDEF_Latest on Criteo_x4, ``net3_dropout``)."""

    num_cross_layers: int = 4  # L cross layers (Criteo 4; the authors' constructor default is 3)
    net_dropout: float = 0.1  # dropout after every cross layer (the authors' net3_dropout)
    batch_norm: bool = True  # BatchNorm1d(1) after every W_i

    def validate(self) -> None:
        if int(self.num_cross_layers) < 0:
            raise UserError(f"num_cross_layers must be a non-negative integer, got {self.num_cross_layers}")
        check_dropout(self.net_dropout)


@register_student("ecn", ECNArgs)
class ECNStudent(Student):
    """ECN (one head): ``L`` exponential cross layers on the halves-first embedding, then ``Linear(F*D -> 1)``."""

    def __init__(self, inp: StudentInput, args: ECNArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or ECNArgs()
        args.validate()
        if inp.input_dim % 2:
            raise UserError(f"student 'ecn' needs an even num_fields * embedding_dim (its cross layers map F*D to "
                            f"F*D/2 and back), got {inp.num_fields} * {inp.embedding_dim}")
        self.input_dim = inp.input_dim
        self.num_cross_layers = int(args.num_cross_layers)
        self.net_dropout = check_dropout(args.net_dropout)
        self.batch_norm = bool(args.batch_norm)
        self.cross = nn.ModuleList(ECNLayer(self.input_dim, self.batch_norm) for _ in range(self.num_cross_layers))
        self.head = nn.Linear(self.input_dim, 1)
        with torch.no_grad():
            for layer in self.cross:  # the constructor's nn.init.uniform_ on each b_i
                layer.bias.uniform_(0.0, 1.0, generator=generator)
        init_linears(self, generator)  # W_0 .. W_{L-1}, then head

    @property
    def output_dim(self) -> int:
        """``F * D`` (the cross network keeps the input width)."""
        return self.input_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, ``x_L`` after dropout ``(B, F*D)``).

        If ``hidden`` is a dict, ``x_{i+1}`` before dropout ``(B, F*D)`` goes to ``cross.<i>``.
        """
        x = halves_first(h, self.inp.num_fields, self.inp.embedding_dim)
        for i, layer in enumerate(self.cross):
            a = layer(x)
            if hidden is not None:
                hidden[f"cross.{i}"] = a
            x = dropout(a, self.net_dropout, self.training)
        return self.head(x).squeeze(-1), x  # (B,), (B, F*D)

    def matrices(self) -> List[Matrix]:
        return [Matrix(f"cross.{i}.linear.weight", "cross", f"cross.{i}", f"cross.{i}") for i in range(len(self.cross))]
