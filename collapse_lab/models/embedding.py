"""The shared embedding layer: one table per field, FuxiCTR-style (``FeatureEmbeddingDict`` semantics).

For a sample with fields ``f = 1..F`` the layer returns the student input ``h = [e_1, ..., e_F]`` of shape
``(B, F*D)`` (docs/method.md §2.1, the homogeneous model flattens it, docs/method.md §4.10):

* categorical field: ``e_f = P_f[x_f]`` (a row of the table ``P_f`` of shape ``(V_f, D)``);
* sequence field (``max_len`` id columns, post- or pre-padded with ``padding_idx``), pooled over its
  non-padding positions ``T_f = {t : x_{f,t} != padding_idx}`` as the feature map's ``pooling`` says:
  ``mean`` (FuxiCTR's default ``MaskedAveragePooling``): ``e_f = sum_{t in T_f} P_f[x_{f,t}] / |T_f|``, or
  ``sum`` (``MaskedSumPooling``): ``e_f = sum_{t in T_f} P_f[x_{f,t}]``; a row with no token (``T_f`` empty)
  gives ``e_f = 0`` in both (FuxiCTR divides by ``|T_f| + 1e-12``);
* numeric field: ``e_f = v_f * P_f[0]`` with a one-row table ``P_f`` of shape ``(1, D)``.

Tables live in an ``nn.ModuleDict`` named ``tables``, so inside :class:`~collapse_lab.models.CTREnsemble`
their state-dict names are ``embedding.tables.<field>.weight`` (the README table). Initialisation follows
FuxiCTR: ``normal(0, embedding_init_std)`` on every row except the padding row, which stays zero and receives
no gradient. The FuxiCTR embedding regulariser is ``(lambda/2) * sum_f ||P_f||_2^2``; :meth:`l2` returns the
sum of squares.
"""

from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.errors import UserError

__all__ = ["SharedEmbedding"]


class SharedEmbedding(nn.Module):
    """Per-field embedding tables shared by all students.

    Args:
        feature_map: the dataset's fields (column layout of ``ids`` and ``values``).
        embedding_dim: D, the width of every table.
        init_std: standard deviation of the normal initialisation (FuxiCTR default 1e-4).
        generator: torch generator for the initialisation (``None`` = the global RNG).

    Shapes:
        ``ids`` int64 ``(B, C)``, ``values`` float32 ``(B, n_numeric)`` -> ``(B, F*D)``.
    """

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, init_std: float = 1e-4,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise UserError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if not init_std > 0:
            raise UserError(f"embedding_init_std must be > 0, got {init_std}")
        if not feature_map.fields:
            raise UserError(f"feature map {feature_map.dataset_id!r} has no fields")
        self.feature_map = feature_map
        self.embedding_dim = int(embedding_dim)
        self.fields: List[FieldInfo] = list(feature_map.fields)
        self.num_id_columns = feature_map.num_id_columns
        self.tables = nn.ModuleDict()
        for f in self.fields:
            if f.type == "numeric":
                self.tables[f.name] = nn.Embedding(1, self.embedding_dim)
            else:
                if f.vocab_size < 1:
                    raise UserError(f"field {f.name!r}: vocab_size must be >= 1, got {f.vocab_size}")
                self.tables[f.name] = nn.Embedding(f.vocab_size, self.embedding_dim, padding_idx=f.padding_idx)
        self.reset_parameters(init_std, generator)

    @property
    def output_dim(self) -> int:
        """F*D, the width of the concatenated student input."""
        return len(self.fields) * self.embedding_dim

    @torch.no_grad()
    def reset_parameters(self, init_std: float, generator: torch.Generator | None = None) -> None:
        """``normal(0, init_std)`` on every row; the padding row is then set back to zero (FuxiCTR)."""
        for f in self.fields:
            table: nn.Embedding = self.tables[f.name]
            nn.init.normal_(table.weight, mean=0.0, std=init_std, generator=generator)
            if table.padding_idx is not None:
                table.weight[table.padding_idx].zero_()

    def forward(self, ids: Tensor, values: Tensor | None = None) -> Tensor:
        """Embed and concatenate all fields: ``(B, C)`` ids [+ ``(B, n_numeric)`` values] -> ``(B, F*D)``."""
        if ids.dim() != 2 or ids.shape[1] != self.num_id_columns:
            raise UserError(f"ids must have shape (B, {self.num_id_columns}), got {tuple(ids.shape)}")
        parts: List[Tensor] = []
        for f in self.fields:
            table = self.tables[f.name]
            weight = table.weight  # (V, D)
            if f.type == "categorical":
                parts.append(F.embedding(ids[:, f.column], weight, padding_idx=table.padding_idx))  # (B, D)
            elif f.type == "sequence":
                # masked mean/sum over the non-padding positions: embedding_bag leaves padding_idx out of both
                # the sum and the count, and an all-padding bag gives 0
                seq = ids[:, f.column:f.column + f.width]  # (B, L)
                parts.append(F.embedding_bag(seq, weight, mode=f.pooling, padding_idx=table.padding_idx))  # (B, D)
            else:
                if values is None:
                    raise UserError(f"field {f.name!r} is numeric: pass its values (B, n_numeric)")
                parts.append(values[:, f.column:f.column + 1] * weight)  # (B, 1) * (1, D) -> (B, D)
        return torch.cat(parts, dim=1)  # (B, F*D)

    def l2(self) -> Tensor:
        """``sum_f ||P_f||_2^2`` over all tables (multiply by ``lambda/2`` for FuxiCTR's regulariser)."""
        return torch.stack([t.weight.pow(2).sum() for t in self.tables.values()]).sum()

    def table_names(self) -> Dict[str, str]:
        """Field name -> state-dict name inside the ensemble (``embedding.tables.<field>.weight``)."""
        return {f.name: f"embedding.tables.{f.name}.weight" for f in self.fields}
