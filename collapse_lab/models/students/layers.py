"""Building blocks the students share: FuxiCTR's initialisation, the MLP block, batch-aware BatchNorm and dropout.

- :func:`init_linear`: xavier-normal weight, zero bias (FuxiCTR ``init_weights`` on every ``nn.Linear``,
  docs/method.md §6), drawn from the student's own generator.
- :class:`MLPLayer`: ``Linear -> BatchNorm1d (optional) -> ReLU -> Dropout`` (one hidden layer of FuxiCTR's
  ``MLP_Block``); :class:`MLPBlock`: a stack of them (state-dict names ``layers.<j>.linear.*``, ``layers.<j>.bn.*``).
- :func:`run_layers`: the one loop that runs such a stack and records each layer's post-ReLU, pre-dropout activation
  as a probe (``MLPBlock.forward`` and the students that keep their layers in a bare ``ModuleList`` use it).
- :class:`DNNArgs`: the three DNN arguments many students share (``hidden_units``, ``net_dropout``, ``batch_norm``,
  the :data:`~collapse_lab.models.students.base.SHARED_ARGS`) and their checks; a student's argument dataclass
  inherits it, may redefine a default, and chains ``validate()`` through ``super().validate()``.
- :func:`batch_norm` and :func:`dropout`: a module's BatchNorm / a dropout routed through
  :mod:`collapse_lab.models.shard`, so that a data-parallel rank normalises with whole-batch statistics and draws
  the whole batch's mask (docs/architecture.md §11). Every student uses these instead of calling ``bn(x)`` or
  ``F.dropout`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models import shard
from collapse_lab.models.students.base import Matrix

__all__ = ["DNNArgs", "MLPBlock", "MLPLayer", "batch_norm", "check_dropout", "check_units", "dropout", "init_linear",
           "init_linears", "run_layers"]


@torch.no_grad()
def init_linear(linear: nn.Linear, generator: torch.Generator | None = None) -> None:
    """Xavier-normal weight, zero bias (FuxiCTR's initialisation of every Linear layer)."""
    nn.init.xavier_normal_(linear.weight, generator=generator)
    if linear.bias is not None:
        linear.bias.zero_()


def init_linears(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """:func:`init_linear` on every ``nn.Linear`` below ``module``, in registration order (FuxiCTR's ``apply``)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            init_linear(m, generator)


def batch_norm(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """``bn(x)``; in a data-parallel training step, with the statistics of the whole batch."""
    if bn.training and shard.current() is not None:
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
        return shard.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, bn.momentum, bn.eps)
    return bn(x)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with probability ``p`` (identity when ``p == 0``); whole-batch masks in a data-parallel step."""
    return shard.dropout(x, p, training) if p > 0 else x


def check_units(units: Sequence[int], key: str = "hidden_units") -> List[int]:
    """Positive integer widths, or a one-line error naming ``key``."""
    out = [int(u) for u in units]
    if any(u < 1 for u in out):
        raise UserError(f"{key} must be positive integers, got {list(units)}")
    return out


def check_dropout(p: float, key: str = "net_dropout") -> float:
    """A dropout probability in [0, 1), or a one-line error naming ``key``."""
    if not 0.0 <= float(p) < 1.0:
        raise UserError(f"{key} must be in [0, 1), got {p}")
    return float(p)


@dataclass
class DNNArgs:
    """The DNN arguments shared by the MLP-based students (defaults: the KDEF run configuration, docs/method.md §2.2).

    A student's argument dataclass inherits these three fields (so ``dataclasses.fields`` and
    ``typing.get_type_hints`` list them first) and may redefine a default, e.g. ``net_dropout: float = 0.1``.
    """

    hidden_units: List[int] = field(default_factory=lambda: [400, 400, 400])  # widths H_0 .. H_{L-1} (may be empty)
    net_dropout: float = 0.0  # dropout after every hidden ReLU
    batch_norm: bool = True  # BatchNorm1d after every hidden Linear

    def validate(self) -> None:
        """Positive ``hidden_units`` and ``net_dropout`` in [0, 1), or a one-line :class:`UserError` naming the key."""
        check_units(self.hidden_units)
        check_dropout(self.net_dropout)


def run_layers(layers: Iterable[nn.Module], x: Tensor, hidden: Dict[str, Tensor] | None, label: str) -> Tensor:
    """Run ``layers`` in turn, each ``x -> (a, x')`` like :class:`MLPLayer` (``a`` post-ReLU, ``x'`` after dropout);
    returns the last ``x'`` ``(B, H_last)`` (``x`` itself without layers) and, if ``hidden`` is a dict, puts layer
    j's ``a`` ``(B, H_j)`` in ``hidden[f"{label}.{j}"]``."""
    for j, layer in enumerate(layers):
        a, x = layer(x)
        if hidden is not None:
            hidden[f"{label}.{j}"] = a
    return x


class MLPLayer(nn.Module):
    """One hidden layer: Linear -> BatchNorm1d (optional) -> ReLU -> Dropout.

    :meth:`recombine` sits between the Linear and the BatchNorm (the identity here); a layer that mixes the Linear's
    output before normalising (FINAL's factorised layer) overrides it and keeps the state names ``linear`` / ``bn``.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float, batch_norm: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim) if batch_norm else None
        self.dropout = float(dropout)

    def recombine(self, u: Tensor) -> Tensor:
        """The Linear's output ``(B, H)`` -> the BatchNorm's input ``(B, H)``: the identity."""
        return u

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``(B, H_in)`` -> (activation after ReLU ``(B, H)``, output after dropout ``(B, H)``)."""
        a = self.recombine(self.linear(x))  # (B, H)
        if self.bn is not None:
            a = batch_norm(self.bn, a)
        a = torch.relu(a)
        return a, dropout(a, self.dropout, self.training)


class MLPBlock(nn.Module):
    """FuxiCTR's ``MLP_Block`` without an output layer: ``MLPLayer`` s of widths ``hidden_units``.

    Args:
        input_dim: input width.
        hidden_units: widths ``H_0 .. H_{L-1}`` (may be empty: the identity).
        net_dropout: dropout after every hidden ReLU.
        batch_norm: BatchNorm1d after every hidden Linear.
    """

    def __init__(self, input_dim: int, hidden_units: Sequence[int], net_dropout: float, batch_norm: bool) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.hidden_units = check_units(hidden_units)
        dims = [self.input_dim, *self.hidden_units]
        self.layers = nn.ModuleList(MLPLayer(dims[j], dims[j + 1], net_dropout, batch_norm)
                                    for j in range(len(self.hidden_units)))

    @property
    def output_dim(self) -> int:
        return self.hidden_units[-1] if self.hidden_units else self.input_dim

    def forward(self, x: Tensor, hidden: Dict[str, Tensor] | None = None, prefix: str = "",
                label: str = "layers") -> Tensor:
        """``(B, input_dim)`` -> ``(B, output_dim)``; layer j's post-ReLU, pre-dropout activation goes to
        ``hidden[f"{prefix}{label}.{j}"]`` (a student's tower ``dnn`` passes ``label="dnn"``: probes ``dnn.<j>``)."""
        return run_layers(self.layers, x, hidden, f"{prefix}{label}")

    def matrices(self, prefix: str = "", label: str = "mlp", activation: str | None = None) -> List[Matrix]:
        """The hidden weights as ``linear`` matrices: ``{prefix}layers.<j>.linear.weight``, labelled ``{label}.<j>``;
        with ``activation``, layer j's output is the ``hidden`` key ``{activation}.<j>`` (what the student writes)."""
        return [Matrix(f"{prefix}layers.{j}.linear.weight", "linear", f"{label}.{j}",
                       None if activation is None else f"{activation}.{j}") for j in range(len(self.layers))]
