"""N homogeneous MLP students with stacked weights: the batched (GPU) form of the per-student loop.

Layer ``j`` of all students is one stacked weight ``W_j`` of shape ``(N, H_j, H_{j-1})``; activations are kept
as a logical ``(B, N, H)`` tensor. The first layer reads the shared input once with a single GEMM
``(B, F*D) @ (F*D, N*H_0)``; deeper layers and the heads are batched GEMMs (``torch.baddbmm``) over the N
students. BatchNorm over the stacked students is computed **per student**: the activation is viewed as
``(B, N*H)`` and normalised per channel (student, unit) by ``F.batch_norm``, which is exactly ``N``
independent ``BatchNorm1d(H)`` (same batch statistics, same running-statistic update with momentum 0.1 and
the unbiased variance).

Forward values equal :class:`~collapse_lab.models.students.MLPStudent` run in a loop up to float rounding
(``tests/test_models_forms.py`` checks max |delta logit| <= 1e-5 and equal gradients). Dropout masks differ
between the forms (different RNG consumption), so train-mode equivalence holds with ``net_dropout = 0``.
See ``docs/performance.md`` §3 and §6 for when this form is faster (GPU) or slower (CPU, N >= 8).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.models import shard
from collapse_lab.models.students import MLPStudent

__all__ = ["BatchedMLP"]

BN_EPS = 1e-5  # nn.BatchNorm1d defaults
BN_MOMENTUM = 0.1


class BatchedMLP(nn.Module):
    """N MLP students as stacked tensors; build it with :meth:`from_students` to copy their initialisation.

    Args:
        num_students: N.
        input_dim: width of the shared input ``F*D``.
        hidden_units: widths ``H_0 .. H_{L-1}`` (may be empty).
        net_dropout: dropout probability after every hidden ReLU.
        batch_norm: per-student BatchNorm after every hidden Linear.
    """

    def __init__(self, num_students: int, input_dim: int, hidden_units: Sequence[int], net_dropout: float,
                 batch_norm: bool) -> None:
        super().__init__()
        n = int(num_students)
        self.num_students = n
        self.input_dim = int(input_dim)
        self.hidden_units = [int(u) for u in hidden_units]
        self.net_dropout = float(net_dropout)
        self.batch_norm = bool(batch_norm)
        dims = [self.input_dim, *self.hidden_units]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(n, dims[j + 1], dims[j]))
                                        for j in range(len(self.hidden_units)))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(n, h)) for h in self.hidden_units)
        if self.batch_norm:
            self.bn_weights = nn.ParameterList(nn.Parameter(torch.ones(n, h)) for h in self.hidden_units)
            self.bn_biases = nn.ParameterList(nn.Parameter(torch.zeros(n, h)) for h in self.hidden_units)
            for j, h in enumerate(self.hidden_units):
                self.register_buffer(f"bn_running_mean_{j}", torch.zeros(n, h))
                self.register_buffer(f"bn_running_var_{j}", torch.ones(n, h))
                self.register_buffer(f"bn_num_batches_tracked_{j}", torch.zeros(n, dtype=torch.long))
        self.head_weight = nn.Parameter(torch.empty(n, 1, dims[-1]))  # (N, 1, H_last)
        self.head_bias = nn.Parameter(torch.zeros(n, 1))  # (N, 1)

    @classmethod
    def from_students(cls, students: Sequence[MLPStudent]) -> BatchedMLP:
        """Stack identically shaped :class:`MLPStudent` s (parameters and BatchNorm statistics are copied)."""
        first = students[0]
        stacked = cls(len(students), first.input_dim, first.hidden_units, first.net_dropout, first.batch_norm)
        prefix_sd = {f"students.{k}.{name}": t for k, s in enumerate(students) for name, t in s.state_dict().items()}
        stacked.load_canonical(prefix_sd, prefix="students.")
        return stacked

    @property
    def output_dim(self) -> int:
        return self.hidden_units[-1] if self.hidden_units else self.input_dim

    # ---- canonical (per-student) names ---------------------------------------------------------------------
    def canonical_slots(self, prefix: str = "students.") -> Dict[str, Tuple[Tensor, int]]:
        """Canonical name -> (stacked tensor, student index); the per-student tensor is ``stacked[k]``."""
        slots: Dict[str, Tuple[Tensor, int]] = {}
        for k in range(self.num_students):
            for j in range(len(self.hidden_units)):
                base = f"{prefix}{k}.layers.{j}"
                slots[f"{base}.linear.weight"] = (self.weights[j], k)
                slots[f"{base}.linear.bias"] = (self.biases[j], k)
                if self.batch_norm:
                    slots[f"{base}.bn.weight"] = (self.bn_weights[j], k)
                    slots[f"{base}.bn.bias"] = (self.bn_biases[j], k)
                    slots[f"{base}.bn.running_mean"] = (getattr(self, f"bn_running_mean_{j}"), k)
                    slots[f"{base}.bn.running_var"] = (getattr(self, f"bn_running_var_{j}"), k)
                    slots[f"{base}.bn.num_batches_tracked"] = (getattr(self, f"bn_num_batches_tracked_{j}"), k)
            slots[f"{prefix}{k}.head.weight"] = (self.head_weight, k)
            slots[f"{prefix}{k}.head.bias"] = (self.head_bias, k)
        return slots

    @torch.no_grad()
    def load_canonical(self, state: Dict[str, Tensor], prefix: str = "students.") -> None:
        """Copy per-student tensors (canonical names, already validated by the caller) into the stacks."""
        for name, (stacked, k) in self.canonical_slots(prefix).items():
            stacked[k].copy_(state[name].reshape(stacked[k].shape))

    # ---- forward ---------------------------------------------------------------------------------------------
    def _norm_act(self, a: Tensor, j: int, hidden: List[Tensor] | None, members: slice) -> Tensor:
        """BatchNorm (per student) -> ReLU -> Dropout on a logical ``(B, N, H)`` activation of ``members``."""
        b, n, h = a.shape
        if self.batch_norm:
            flat = a.reshape(b, n * h)  # (B, N*H): channel (k, unit) -> k*H + unit, a view when a is contiguous
            if self.training:
                getattr(self, f"bn_num_batches_tracked_{j}")[members].add_(1)
            flat = shard.batch_norm(flat, getattr(self, f"bn_running_mean_{j}")[members].view(-1),
                                    getattr(self, f"bn_running_var_{j}")[members].view(-1),
                                    self.bn_weights[j][members].reshape(-1), self.bn_biases[j][members].reshape(-1),
                                    self.training, BN_MOMENTUM, BN_EPS)
            a = flat.view(b, n, h)  # (B, N, H)
        a = torch.relu(a)
        if hidden is not None:
            hidden.append(a)
        return shard.dropout(a, self.net_dropout, self.training) if self.net_dropout > 0 else a

    def forward(self, x: Tensor, hidden: List[Tensor] | None = None,
                members: slice | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logits ``(B, N)``, last hidden output ``(B, N, H_last)``).

        If ``hidden`` is a list, each layer's post-ReLU, pre-dropout activation ``(B, N, H_j)`` is appended.
        ``members`` (a contiguous ``slice`` of students) runs only those students (N above is their number):
        an ensemble-parallel rank's share (collapse_lab.parallel).
        """
        members = slice(0, self.num_students) if members is None else members
        n, b = len(range(self.num_students)[members]), x.shape[0]
        if not self.hidden_units:
            a = x.unsqueeze(1).expand(b, n, self.input_dim)  # (B, N, F*D): the shared input for every head
        for j, w in enumerate(self.weights):
            w, bias = w[members], self.biases[j][members]
            h = w.shape[1]
            if j == 0:
                # one GEMM for all students on the shared input: (B, F*D) @ (F*D, N*H) + (N*H,)
                a = torch.addmm(bias.reshape(-1), x, w.reshape(n * h, -1).t()).view(b, n, h)  # (B, N, H)
            else:
                a = torch.baddbmm(bias.unsqueeze(1), a.transpose(0, 1), w.transpose(1, 2))  # (N, B, H)
                a = a.transpose(0, 1)  # (B, N, H), strided view
            a = self._norm_act(a, j, hidden, members)
        z = torch.baddbmm(self.head_bias[members].unsqueeze(-1), a.transpose(0, 1),
                          self.head_weight[members].transpose(1, 2))
        return z.squeeze(-1).t().contiguous(), a  # (N, B, 1) -> (B, N); (B, N, H_last)
