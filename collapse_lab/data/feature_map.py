"""The feature map of a processed dataset (FuxiCTR's ``feature_map.json`` idea, our own schema).

A processed dataset stores, per split, one int32 matrix ``ids`` of shape ``(rows, C)``; every field owns a
contiguous block of its columns:

* ``categorical`` field: 1 column holding a field-local id in ``[0, vocab_size)``;
* ``sequence`` field: ``max_len`` columns of field-local ids, padded with ``padding_idx`` (post or pre
  padding), pooled into one vector by ``pooling``: ``mean`` (FuxiCTR's default ``MaskedAveragePooling``) or
  ``sum`` (``MaskedSumPooling``);
* ``numeric`` field (not bucketised): no id column; its float32 value lives in column ``column`` of the
  split's ``values`` matrix ``(rows, n_numeric)`` and is embedded as ``value * vector``.

Id conventions follow FuxiCTR: ``padding_idx = 0``, known tokens ``1 .. n``, ``oov_idx = n + 1`` and
``vocab_size = n + 2``. Tokens seen fewer than ``min_categr_count`` times in the training split map to OOV.

Feature maps written before ``pooling`` was recorded (collapse-lab 0.1.0 pooled every sequence by sum) read a
sequence field without the key as ``mean``: FuxiCTR's semantics for a field without a ``feature_encoder``, and
what the KDEF authors ran (the ML_1M_7_x1 and KKBox logs of github.com/salmon1802/KDEF print
``layers.MaskedAveragePooling()``). The ids are the same either way, so an old processed dataset is read
correctly without a rebuild; ``data prepare`` rebuilds it once all the same (the pooling is part of the spec's
content hash) and then records the key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Union

from collapse_lab.errors import UserError

__all__ = ["FieldInfo", "FeatureMap", "FEATURE_MAP_SCHEMA_VERSION"]

FEATURE_MAP_SCHEMA_VERSION = 1
FIELD_TYPES = ("categorical", "sequence", "numeric")
POOLING_MODES = ("mean", "sum")


@dataclass
class FieldInfo:
    """One input field of a processed dataset."""

    name: str
    type: str  # categorical | sequence | numeric
    column: int  # first column in ``ids`` (categorical/sequence) or the column in ``values`` (numeric)
    width: int = 1  # number of id columns (max_len for sequences; 0 for numeric)
    vocab_size: int = 0  # rows of the embedding table (incl. padding and OOV); 1 for numeric
    padding_idx: int | None = 0
    oov_idx: int | None = None
    max_len: int | None = None
    extra: Dict[str, Any] = field(default_factory=dict)  # e.g. preprocessing recipe, source column
    pooling: str | None = None  # sequence fields: mean | sum (absent in old feature maps: mean); else None

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise UserError(f"field {self.name!r}: type {self.type!r} is not one of {', '.join(FIELD_TYPES)}")
        if self.type == "sequence":
            self.pooling = "mean" if self.pooling is None else self.pooling
            if self.pooling not in POOLING_MODES:
                raise UserError(f"field {self.name!r}: pooling {self.pooling!r} is not one of "
                                f"{', '.join(POOLING_MODES)}")
        elif self.pooling is not None:
            raise UserError(f"field {self.name!r}: pooling applies to sequence fields, not {self.type}")


@dataclass
class FeatureMap:
    """All fields of a processed dataset, in column order."""

    dataset_id: str
    fields: List[FieldInfo]
    label_col: str = "label"
    schema_version: int = FEATURE_MAP_SCHEMA_VERSION

    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def num_id_columns(self) -> int:
        """Width C of the ``ids`` matrix."""
        return sum(f.width for f in self.fields if f.type != "numeric")

    @property
    def num_numeric(self) -> int:
        return sum(1 for f in self.fields if f.type == "numeric")

    def field(self, name: str) -> FieldInfo:
        for f in self.fields:
            if f.name == name:
                return f
        raise UserError(f"no field {name!r}; fields: {', '.join(f.name for f in self.fields)}")

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "dataset_id": self.dataset_id,
            "label_col": self.label_col,
            "num_fields": self.num_fields,
            "num_id_columns": self.num_id_columns,
            "num_numeric": self.num_numeric,
            "total_features": sum(f.vocab_size for f in self.fields),
            "fields": [asdict(f) for f in self.fields],
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "feature map") -> FeatureMap:
        try:
            fields = [FieldInfo(**f) for f in data["fields"]]
            return cls(
                dataset_id=data["dataset_id"],
                fields=fields,
                label_col=data.get("label_col", "label"),
                schema_version=int(data.get("schema_version", FEATURE_MAP_SCHEMA_VERSION)),
            )
        except (KeyError, TypeError) as exc:
            raise UserError(f"{source}: not a valid feature map ({exc})") from None

    def save(self, path: Union[str, Path]) -> None:
        from collapse_lab.io.atomic import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Union[str, Path]) -> FeatureMap:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: feature map not found") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
        return cls.from_dict(data, source=str(path))
