"""Dataset specs in FuxiCTR's vocabulary (``shared/docs/data.md`` §1.4).

A spec names the raw train/valid/test files (CSV with a header, or parquet), the feature columns and the label.
It is YAML, either flat (with a ``dataset_id`` key) or keyed by the dataset id as in FuxiCTR's
``dataset_config.yaml``::

    Criteo_x4:
        data_format: csv
        train_data: data/raw/Criteo_x4/train.csv
        valid_data: data/raw/Criteo_x4/valid.csv
        test_data: data/raw/Criteo_x4/test.csv
        min_categr_count: 10
        feature_cols:
            - {name: [I1, I2], dtype: float, type: categorical, preprocess: convert_to_bucket, fill_na: 0}
            - {name: [C1, C2], dtype: str, type: categorical}
            - {name: genres, dtype: str, type: sequence, splitter: "^", max_len: 6}
        label_col: {name: label, dtype: float}

Column semantics follow FuxiCTR: ``fill_na`` (alias ``na_value``) replaces missing cells (default ``""`` for
``dtype: str``, ``0`` for numbers); for categorical and sequence fields the ``fill_na`` token is never part
of the vocabulary; tokens seen fewer than ``min_categr_count`` times (global, or per column) in the training
split map to the OOV id. ``preprocess: convert_to_bucket`` (alias ``bucketize``) applies FuxiCTR's Criteo
transform x → ⌊(ln x)²⌋ if x > 2 else int(x); ``bucketize_log2`` applies the BARS README's ⌊log₂ x⌋ if x > 2
else 1 (``data.md`` §1.2); FuxiCTR's KKBox hooks ``extract_country_code`` (first two characters, e.g. of an
ISRC) and ``bucketize_age`` (1–10 → "1", …, 51–60 → "6", 61–95 → "7", anything else missing) are string
transforms. A preprocessed column is always a categorical field. Sequences are split on
``splitter`` (default ``^``), padded/truncated to ``max_len`` (default: the longest training sequence) with
``padding: post`` (default; keeps the first ``max_len`` tokens) or ``pre`` (keeps the last ones, FuxiCTR's
default). Relative paths resolve against ``base_dir`` (the current directory unless given).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Union

from collapse_lab.errors import UserError
from collapse_lab.io.paths import check_name

__all__ = ["ColumnSpec", "DatasetSpec", "load_spec", "spec_from_dict", "SPEC_KEYS", "COLUMN_KEYS",
           "PREPROCESSORS", "NUMERIC_BUCKETS", "STRING_PREPROCESSORS"]

SPEC_KEYS = ("dataset_id", "description", "data_root", "data_format", "train_data", "valid_data", "test_data",
             "min_categr_count", "feature_cols", "label_col", "sep")
COLUMN_KEYS = ("name", "active", "dtype", "type", "fill_na", "na_value", "min_categr_count", "preprocess",
               "splitter", "max_len", "padding", "source")
LABEL_KEYS = ("name", "dtype")
NUMERIC_BUCKETS = ("convert_to_bucket", "bucketize", "bucketize_log2")
STRING_PREPROCESSORS = ("extract_country_code", "bucketize_age")
PREPROCESSORS = NUMERIC_BUCKETS + STRING_PREPROCESSORS
_DTYPES = {"str": "str", "string": "str", "int": "int", "float": "float"}
_TYPES = ("categorical", "numeric", "sequence")
_FORMATS = ("csv", "parquet")


@dataclass
class ColumnSpec:
    """One input column and how it becomes a field."""

    name: str
    type: str = "categorical"  # categorical | numeric | sequence (as declared)
    dtype: str = "str"  # str | int | float: how raw cells are read
    fill_na: Any = None  # replacement for missing cells ("" for str, 0 for numbers when None)
    min_categr_count: int | None = None  # per-column override of the spec's min_categr_count
    preprocess: str | None = None  # convert_to_bucket | bucketize_log2 | extract_country_code | bucketize_age
    splitter: str = "^"  # sequences only
    max_len: int | None = None  # sequences only; None = longest training sequence
    padding: str = "post"  # sequences only: post | pre
    source: str = ""  # free tag (FuxiCTR's user/item source), recorded in the feature map

    @property
    def field_type(self) -> str:
        """The processed field type: a bucketised numeric column is categorical."""
        return "categorical" if self.preprocess else self.type

    @property
    def na_token(self) -> Any:
        if self.fill_na is not None:
            return self.fill_na
        return "" if self.dtype == "str" else 0


@dataclass
class DatasetSpec:
    """A validated dataset spec; ``paths`` are resolved absolute paths per split."""

    dataset_id: str
    train_data: Path
    valid_data: Path
    test_data: Path
    feature_cols: List[ColumnSpec]
    label_col: str = "label"
    label_dtype: str = "float"
    data_format: str = "csv"
    min_categr_count: int = 1
    sep: str = ","
    description: str = ""
    source: str = "spec"  # where the spec came from (file path or built-in name), for messages
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> Dict[str, Path]:
        return {"train": self.train_data, "valid": self.valid_data, "test": self.test_data}

    def recipe(self) -> Dict[str, Any]:
        """Everything that determines the output besides the input bytes (hashed into ``content_hash``)."""
        return {"dataset_id": self.dataset_id, "data_format": self.data_format, "sep": self.sep,
                "min_categr_count": self.min_categr_count, "label_col": self.label_col,
                "label_dtype": self.label_dtype, "feature_cols": [asdict(c) for c in self.feature_cols],
                "extra": self.extra}

    def to_dict(self) -> Dict[str, Any]:
        return {**self.recipe(), "description": self.description,
                "paths": {k: str(v) for k, v in self.paths.items()}}


def _check_keys(entry: Dict[str, Any], valid: tuple, where: str) -> None:
    for key in entry:
        if key not in valid:
            raise UserError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")


def _column(entry: Any, name: str, default_type: str, where: str) -> ColumnSpec:
    dtype = _DTYPES.get(str(entry.get("dtype", "str")))
    if dtype is None:
        raise UserError(f"{where}: dtype {entry.get('dtype')!r} is not one of str, int, float")
    ctype = entry.get("type", default_type)
    if ctype not in _TYPES:
        raise UserError(f"{where}: type {ctype!r} is not supported; valid types: {', '.join(_TYPES)}")
    pre = entry.get("preprocess")
    if pre is not None and pre not in PREPROCESSORS:
        raise UserError(f"{where}: preprocess {pre!r} is not one of {', '.join(PREPROCESSORS)}")
    if pre is not None and ctype == "sequence":
        raise UserError(f"{where}: preprocess applies to numeric or categorical columns, not sequences")
    pre = "convert_to_bucket" if pre == "bucketize" else pre
    padding = entry.get("padding", "post")
    if padding not in ("post", "pre"):
        raise UserError(f"{where}: padding {padding!r} is not one of post, pre")
    max_len = entry.get("max_len")
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise UserError(f"{where}: max_len must be a positive integer, got {max_len!r}")
    mcc = entry.get("min_categr_count")
    if mcc is not None and (not isinstance(mcc, int) or mcc < 1):
        raise UserError(f"{where}: min_categr_count must be a positive integer, got {mcc!r}")
    fill = entry.get("fill_na", entry.get("na_value"))
    if pre in STRING_PREPROCESSORS:
        dtype = "str"
    if ctype == "numeric" and pre is None and dtype == "str":
        dtype = "float"
    return ColumnSpec(name=str(name), type=ctype, dtype=dtype, fill_na=fill, min_categr_count=mcc,
                      preprocess=pre, splitter=str(entry.get("splitter", "^")), max_len=max_len, padding=padding,
                      source=str(entry.get("source", "")))


def spec_from_dict(data: Any, source: str = "spec", base_dir: Union[str, Path, None] = None,
                   dataset_id: str | None = None) -> DatasetSpec:
    """Validate a spec mapping (flat, or FuxiCTR style ``{dataset_id: {...}}``) into a :class:`DatasetSpec`."""
    if not isinstance(data, dict) or not data:
        raise UserError(f"{source}: expected a mapping of spec keys ({', '.join(SPEC_KEYS)})")
    if "feature_cols" not in data:  # FuxiCTR layout: one or more datasets keyed by id
        ids = [k for k, v in data.items() if isinstance(v, dict)]
        if dataset_id is None:
            if len(data) != 1 or len(ids) != 1:
                unknown = [k for k in data if k not in SPEC_KEYS]
                if unknown and not ids:
                    raise UserError(f"{source}: unknown key {unknown[0]!r}; valid keys: {', '.join(SPEC_KEYS)}")
                raise UserError(f"{source}: holds {len(ids)} datasets ({', '.join(map(str, ids))}); "
                                "choose one with --dataset-id")
            dataset_id = ids[0]
        if dataset_id not in data or not isinstance(data[dataset_id], dict):
            raise UserError(f"{source}: no dataset {dataset_id!r}; datasets: {', '.join(map(str, ids))}")
        data = {"dataset_id": dataset_id, **data[dataset_id]}
    _check_keys(data, SPEC_KEYS, source)
    missing = [k for k in ("dataset_id", "train_data", "valid_data", "test_data", "feature_cols", "label_col")
               if data.get(k) in (None, "", [])]
    if missing:
        raise UserError(f"{source}: missing required key {missing[0]!r}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    paths = {k: (base / str(data[k])) if not Path(str(data[k])).is_absolute() else Path(str(data[k]))
             for k in ("train_data", "valid_data", "test_data")}
    fmt = data.get("data_format")
    if fmt is None:
        fmt = "parquet" if paths["train_data"].suffix == ".parquet" else "csv"
    if fmt not in _FORMATS:
        raise UserError(f"{source}: data_format {fmt!r} is not one of {', '.join(_FORMATS)}")
    mcc = data.get("min_categr_count", 1)
    if not isinstance(mcc, int) or mcc < 1:
        raise UserError(f"{source}: min_categr_count must be a positive integer, got {mcc!r}")

    label = data["label_col"]
    if isinstance(label, list):
        if len(label) != 1:
            raise UserError(f"{source}: label_col: exactly one label column is supported, got {len(label)}")
        label = label[0]
    if isinstance(label, str):
        label = {"name": label}
    if not isinstance(label, dict) or "name" not in label:
        raise UserError(f"{source}: label_col must be a mapping {{name, dtype}}")
    _check_keys(label, LABEL_KEYS, f"{source}: label_col")

    if not isinstance(data["feature_cols"], list):
        raise UserError(f"{source}: feature_cols must be a list of column entries")
    columns: List[ColumnSpec] = []
    for i, entry in enumerate(data["feature_cols"]):
        where = f"{source}: feature_cols[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise UserError(f"{where}: expected a mapping with at least a 'name'")
        _check_keys(entry, COLUMN_KEYS, where)
        if entry.get("active", True) is False:
            continue
        names = entry["name"] if isinstance(entry["name"], list) else [entry["name"]]
        columns.extend(_column(entry, n, "categorical", f"{where} ({n})") for n in names)
    if not columns:
        raise UserError(f"{source}: feature_cols has no active column")
    seen = set()
    for c in columns:
        if c.name in seen or c.name == label["name"]:
            raise UserError(f"{source}: column {c.name!r} is listed twice (or is also the label)")
        seen.add(c.name)
    dataset_id = check_name(data["dataset_id"], "dataset_id", source)  # it names <data_root>/<dataset_id>
    return DatasetSpec(dataset_id=dataset_id, train_data=paths["train_data"],
                       valid_data=paths["valid_data"], test_data=paths["test_data"], feature_cols=columns,
                       label_col=str(label["name"]), label_dtype=str(label.get("dtype", "float")), data_format=fmt,
                       min_categr_count=mcc, sep=str(data.get("sep", ",")),
                       description=str(data.get("description", "")), source=source)


def load_spec(path: Union[str, Path], dataset_id: str | None = None, base_dir: Union[str, Path, None] = None,
              ) -> DatasetSpec:
    """Read and validate a YAML spec file (relative data paths resolve against ``base_dir`` or the cwd)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: spec file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a YAML spec file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise UserError(f"{path}: {where}invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    return spec_from_dict(data, source=str(path), base_dir=base_dir, dataset_id=dataset_id)
