"""The toy CSV dataset spec shared by the bad-input tests: a numeric ``I1``, a categorical ``C1`` and a 0/1 label,
with the three splits as ``train.csv``, ``valid.csv`` and ``test.csv`` in one folder."""

from __future__ import annotations

from pathlib import Path

import yaml

HEADER = "label,I1,C1"
GOOD = ["1,3,a", "0,4,b", "1,,a"]


def write_toy_spec(folder: Path, **overrides) -> Path:
    """Write ``folder/spec.yaml`` for the toy splits in ``folder`` (keys of ``overrides`` replace the spec's)."""
    spec = {"dataset_id": "toy", "train_data": str(folder / "train.csv"), "valid_data": str(folder / "valid.csv"),
            "test_data": str(folder / "test.csv"),
            "feature_cols": [{"name": "I1", "type": "numeric", "dtype": "float"},
                             {"name": "C1", "type": "categorical", "dtype": "str"}],
            "label_col": {"name": "label", "dtype": "float"}}
    spec.update(overrides)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
