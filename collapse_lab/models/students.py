"""Student sub-networks and their registry.

A student maps the shared embedding input ``h`` of shape ``(B, F*D)`` to one logit ``z_k`` (docs/method.md §2.2).
The ``mlp`` student is FuxiCTR's ``MLP_Block`` followed by a logit head (the KDEF_MLP students):

    for j = 0 .. L-1:  a_j = Dropout(ReLU(BatchNorm1d(W_j a_{j-1} + b_j)))      a_{-1} = h
    z = w_head . a_{L-1} + b_head

Every ``nn.Linear`` gets xavier-normal weights and zero bias (FuxiCTR ``init_weights``, docs/method.md §6), drawn from
the student's own generator, so students differ by design. State-dict names below a student are
``layers.<j>.linear.*``, ``layers.<j>.bn.*`` and ``head.*`` (``students.<k>.`` inside the ensemble).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models import shard
from collapse_lab.registry import Registry

__all__ = ["STUDENTS", "MLPLayer", "MLPStudent", "init_linear", "mlp"]

STUDENTS = Registry("student")


@torch.no_grad()
def init_linear(linear: nn.Linear, generator: torch.Generator | None = None) -> None:
    """Xavier-normal weight, zero bias (FuxiCTR's initialisation of every Linear layer)."""
    nn.init.xavier_normal_(linear.weight, generator=generator)
    if linear.bias is not None:
        linear.bias.zero_()


class MLPLayer(nn.Module):
    """One hidden layer: Linear -> BatchNorm1d (optional) -> ReLU -> Dropout."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float, batch_norm: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim) if batch_norm else None
        self.dropout = float(dropout)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``(B, H_in)`` -> (activation after ReLU ``(B, H)``, output after dropout ``(B, H)``)."""
        a = self.linear(x)  # (B, H)
        if self.bn is not None:
            if self.training and shard.current() is not None:  # a rank's rows, whole-batch statistics
                self.bn.num_batches_tracked.add_(1)
                a = shard.batch_norm(a, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                                     True, self.bn.momentum, self.bn.eps)
            else:
                a = self.bn(a)
        a = torch.relu(a)
        return a, shard.dropout(a, self.dropout, self.training) if self.dropout > 0 else a


class MLPStudent(nn.Module):
    """An MLP student: hidden ``MLPLayer`` s then ``Linear(H_last -> 1)``.

    Args:
        input_dim: width of the input ``F*D``.
        hidden_units: widths ``H_0 .. H_{L-1}`` (may be empty: a logistic-regression student).
        net_dropout: dropout probability after every hidden ReLU.
        batch_norm: BatchNorm1d after every hidden Linear.
        generator: torch generator of this student's initialisation.
    """

    def __init__(self, input_dim: int, hidden_units: Sequence[int] = (400, 400, 400), net_dropout: float = 0.0,
                 batch_norm: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        units = [int(u) for u in hidden_units]
        if any(u < 1 for u in units):
            raise UserError(f"hidden_units must be positive integers, got {list(hidden_units)}")
        if not 0.0 <= net_dropout < 1.0:
            raise UserError(f"net_dropout must be in [0, 1), got {net_dropout}")
        self.input_dim = int(input_dim)
        self.hidden_units = units
        self.net_dropout = float(net_dropout)
        self.batch_norm = bool(batch_norm)
        dims = [self.input_dim, *units]
        self.layers = nn.ModuleList(MLPLayer(dims[j], dims[j + 1], net_dropout, batch_norm) for j in range(len(units)))
        self.head = nn.Linear(dims[-1], 1)
        for layer in self.layers:
            init_linear(layer.linear, generator)
        init_linear(self.head, generator)

    @property
    def output_dim(self) -> int:
        """Width of the last hidden layer (the input of the head)."""
        return self.hidden_units[-1] if self.hidden_units else self.input_dim

    def forward(self, x: Tensor, hidden: List[Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, last hidden output after dropout ``(B, H_last)``).

        If ``hidden`` is a list, each layer's post-ReLU, pre-dropout activation ``(B, H_j)`` is appended to it.
        """
        for layer in self.layers:
            a, x = layer(x)
            if hidden is not None:
                hidden.append(a)
        return self.head(x).squeeze(-1), x  # (B,), (B, H_last)


@STUDENTS.register("mlp")
def mlp(input_dim: int, hidden_units: Sequence[int] = (400, 400, 400), net_dropout: float = 0.0,
        batch_norm: bool = True, generator: torch.Generator | None = None) -> MLPStudent:
    """The KDEF_MLP student (FuxiCTR ``MLP_Block`` + logit head), see :class:`MLPStudent`."""
    return MLPStudent(input_dim, hidden_units, net_dropout, batch_norm, generator)
