"""The ``autoint`` student: AutoInt+ (multi-head self-attention over fields plus a DNN; Table VI's "AutoInt*",
docs/method.md §7).

With ``X^0 = h.view(B, F, D)`` (the F field vectors as tokens), ``A`` = ``attention_dim``, ``n`` = ``num_heads``,
``d_h = A / n``, each of the ``attention_layers`` layers i computes, per head (columns ``[k d_h, (k+1) d_h)``)::

    Q = X W_q,  K = X W_k,  V = X W_v                         (B, F, A)   no biases
    S = Q_k K_kᵀ / s                                         (B, n, F, F)  s = sqrt(d_h) if use_scale else 1
    O_k = Dropout(softmax_row(S)) V_k                         heads concatenated -> (B, F, A)
    O  = O + (X W_res  if D_in != A else X)                   if use_residual
    X' = ReLU(LayerNorm(O))                                   LayerNorm only if layer_norm

then ``z = w_att · flatten(X^L) + b_att + w_head · a_{L-1} + b_head`` where ``a`` is a DNN (MLPBlock) on ``h``.
``last`` = ``[flatten(X^L); a_{L-1}]`` ``(B, F*A + H_last)`` (both representations the summed logit reads).

Parameters: layer 0 ``3*D*A`` (+ ``D*A`` for W_res when D != A and use_residual), layers i > 0 ``3*A*A``
(+ ``2*A`` per layer with layer_norm), the attention head ``F*A + 1``, the DNN and its head as the ``mlp`` student.
Criteo (F = 39, D = A = 16, 2 layers, [400, 400, 400] with BN): 2*768 + 625 + 573,601 = 575,762.

Sources: the authors' ``AutoInt`` / ``MultiHeadSelfAttention`` (src/Backbone.py of salmon1802/KDEF) and FuxiCTR
2.3.10 ``model_zoo/AutoInt`` with ``layers/attentions`` (``ScaledDotProductAttention``). Where they differ we follow
the authors. Deviations and choices, named:

- **use_scale defaults to true** (the authors' ``AutoInt`` default; FuxiCTR's default is false): scores are divided
  by ``sqrt(d_h)``. Set ``use_scale: false`` for FuxiCTR's behaviour.
- **the DNN is always present** (the authors' sub-network): FuxiCTR drops it when ``dnn_hidden_units`` is empty;
  here an empty ``hidden_units`` leaves a linear DNN (``Linear(F*D -> 1)``). There is no ``use_wide`` LR (the
  authors' sub-network has none; FuxiCTR's default is off).
- **net_dropout** is used twice, as in both sources: on the attention probabilities and after every DNN ReLU.
- **num_heads 2, attention_dim 16** (= D on Criteo, so layer 0 needs no W_res): the project's choice for the
  Table VI student, whose released configuration is unknown; the authors' and FuxiCTR's class defaults are 1 head of
  dimension 8. ``attention_layers`` 2 is the default of both sources.
- **defaults of the DNN**: ``hidden_units`` [400, 400, 400], ``batch_norm`` true, ``net_dropout`` 0.0 (the KDEF run
  configuration's values, which the ensemble passes from the top-level keys).
- the attention head and the DNN head are separate Linears whose logits are summed (as in both sources); neither
  is listed in :meth:`AutoIntStudent.matrices`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.models.students.base import Matrix, Student, StudentInput, register_student
from collapse_lab.models.students.layers import DNNArgs, MLPBlock, dropout, init_linears

__all__ = ["AutoIntArgs", "AutoIntStudent", "SelfAttentionLayer"]


@dataclass
class AutoIntArgs(DNNArgs):
    """Arguments of the ``autoint`` student: :class:`~collapse_lab.models.students.layers.DNNArgs` for the DNN
    (``net_dropout`` also drops attention probabilities), plus the self-attention layers."""

    attention_layers: int = 2  # number of self-attention layers
    num_heads: int = 2  # heads per layer; attention_dim must be divisible by it
    attention_dim: int = 16  # A, the width of Q, K, V and of every layer's output
    use_residual: bool = True  # add X (or X W_res when its width is not A) to the attention output
    use_scale: bool = True  # divide the scores by sqrt(attention_dim / num_heads)
    layer_norm: bool = False  # LayerNorm(A) after the residual

    def validate(self) -> None:
        super().validate()
        for key in ("attention_layers", "num_heads", "attention_dim"):
            if int(getattr(self, key)) < 1:
                raise UserError(f"{key} must be a positive integer, got {getattr(self, key)}")
        if self.attention_dim % self.num_heads != 0:
            raise UserError(f"attention_dim must be divisible by num_heads={self.num_heads}, "
                            f"got {self.attention_dim}")


class SelfAttentionLayer(nn.Module):
    """One multi-head self-attention layer over the field axis: ``(B, F, D_in)`` -> ``(B, F, A)``.

    State dict: ``query.weight``, ``key.weight``, ``value.weight`` (A x D_in, no biases), ``residual.weight``
    (only when use_residual and D_in != A), ``norm.*`` (only with layer_norm).
    """

    def __init__(self, input_dim: int, attention_dim: int, num_heads: int, dropout_rate: float,
                 use_residual: bool, use_scale: bool, layer_norm: bool) -> None:
        super().__init__()
        self.num_heads = int(num_heads)
        self.head_dim = attention_dim // num_heads
        self.dropout_rate = float(dropout_rate)
        self.use_residual = bool(use_residual)
        self.scale = math.sqrt(self.head_dim) if use_scale else 1.0
        self.query = nn.Linear(input_dim, attention_dim, bias=False)
        self.key = nn.Linear(input_dim, attention_dim, bias=False)
        self.value = nn.Linear(input_dim, attention_dim, bias=False)
        self.residual = (nn.Linear(input_dim, attention_dim, bias=False)
                         if use_residual and input_dim != attention_dim else None)
        self.norm = nn.LayerNorm(attention_dim) if layer_norm else None

    def _heads(self, x: Tensor) -> Tensor:
        """``(B, F, A)`` -> ``(B, n, F, d_h)``."""
        b, f, _ = x.shape
        return x.view(b, f, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        b, f, _ = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / self.scale  # (B, n, F, F)
        probs = dropout(scores.softmax(dim=-1), self.dropout_rate, self.training)
        out = (probs @ v).transpose(1, 2).reshape(b, f, self.num_heads * self.head_dim)  # (B, F, A)
        if self.use_residual:
            out = out + (self.residual(x) if self.residual is not None else x)
        if self.norm is not None:
            out = self.norm(out)
        return torch.relu(out)


@register_student("autoint", AutoIntArgs)
class AutoIntStudent(Student):
    """AutoInt+: self-attention layers over the fields + a parallel DNN, logits summed.

    State dict: ``attention.<i>.{query,key,value,residual}.weight``, ``attention_head.*``, ``dnn.layers.<j>.*``,
    ``head.*``.
    """

    def __init__(self, inp: StudentInput, args: AutoIntArgs | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(inp)
        args = args or AutoIntArgs()
        args.validate()
        self.attention_dim = int(args.attention_dim)
        self.dnn = MLPBlock(inp.input_dim, args.hidden_units, args.net_dropout, args.batch_norm)
        self.attention = nn.ModuleList(
            SelfAttentionLayer(inp.embedding_dim if i == 0 else self.attention_dim, self.attention_dim,
                               args.num_heads, args.net_dropout, args.use_residual, args.use_scale, args.layer_norm)
            for i in range(args.attention_layers))
        self.attention_head = nn.Linear(inp.num_fields * self.attention_dim, 1)
        self.head = nn.Linear(self.dnn.output_dim, 1)
        init_linears(self, generator)

    @property
    def output_dim(self) -> int:
        """``F*A + H_last``: the flattened attention output and the DNN's last output."""
        return self.inp.num_fields * self.attention_dim + self.dnn.output_dim

    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, ``[flatten(X^L); a_{L-1}]``); ``hidden[attention.<i>]`` = layer i's output
        flattened ``(B, F*A)``, ``hidden[dnn.<j>]`` = DNN layer j's post-ReLU activation."""
        x = h.view(h.shape[0], self.inp.num_fields, self.inp.embedding_dim)  # (B, F, D)
        for i, layer in enumerate(self.attention):
            x = layer(x)  # (B, F, A)
            if hidden is not None:
                hidden[f"attention.{i}"] = x.flatten(1)
        att = x.flatten(1)  # (B, F*A)
        deep = self.dnn(h, hidden, label="dnn")  # (B, H_last)
        logit = self.attention_head(att) + self.head(deep)  # (B, 1)
        return logit.squeeze(-1), torch.cat([att, deep], dim=-1)

    def matrices(self) -> List[Matrix]:
        out: List[Matrix] = []
        for i, layer in enumerate(self.attention):
            for part in ("query", "key", "value", "residual"):
                if getattr(layer, part) is not None:
                    out.append(Matrix(f"attention.{i}.{part}.weight", "attention", f"attention.{i}.{part}"))
        return out + self.dnn.matrices(prefix="dnn.", label="dnn", activation="dnn")
