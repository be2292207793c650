"""Dataset specs in FuxiCTR's vocabulary (``docs/data.md`` §1.4).

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
else 1 (``docs/data.md`` §1.2); FuxiCTR's KKBox hooks ``extract_country_code`` (first two characters, e.g. of an
ISRC) and ``bucketize_age`` (1–10 → "1", …, 51–60 → "6", 61–95 → "7", anything else missing) are string
transforms. A preprocessed column is always a categorical field. Sequences are split on
``splitter`` (default ``^``), padded/truncated to ``max_len`` (default: the longest training sequence) with
``padding: post`` (default; keeps the first ``max_len`` tokens) or ``pre`` (keeps the last ones, FuxiCTR's
default). Sequence fields are pooled into one vector per field as FuxiCTR's ``feature_encoder`` says:
``layers.MaskedAveragePooling()`` (FuxiCTR's default when the key is absent) or ``layers.MaskedSumPooling()``;
the choice is recorded as ``pooling`` (``mean`` | ``sum``). An explicit null, which leaves the sequence unpooled
in FuxiCTR (for models that attend over it), is read as average with a warning: a student needs one vector
per field.

Keys FuxiCTR 2.3 reads but collapse-lab does not use (:data:`FUXICTR_COLUMN_KEYS`, :data:`FUXICTR_SPEC_KEYS`)
are accepted with a one-line warning (``DatasetSpec.warnings``) that says what FuxiCTR does with them; keys
neither knows are an error. Relative paths resolve against ``base_dir`` (the current directory unless given).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Union

from collapse_lab.errors import UserError
from collapse_lab.io.paths import check_name

__all__ = ["ColumnSpec", "DatasetSpec", "load_spec", "spec_from_dict", "SPEC_KEYS", "COLUMN_KEYS",
           "PREPROCESSORS", "NUMERIC_BUCKETS", "STRING_PREPROCESSORS", "POOLINGS", "FUXICTR_COLUMN_KEYS",
           "FUXICTR_SPEC_KEYS", "pooling_of"]

SPEC_KEYS = ("dataset_id", "description", "data_root", "data_format", "train_data", "valid_data", "test_data",
             "min_categr_count", "feature_cols", "label_col", "sep")
COLUMN_KEYS = ("name", "active", "dtype", "type", "fill_na", "na_value", "min_categr_count", "preprocess",
               "splitter", "max_len", "padding", "source", "feature_encoder")
LABEL_KEYS = ("name", "dtype")
NUMERIC_BUCKETS = ("convert_to_bucket", "bucketize", "bucketize_log2")
STRING_PREPROCESSORS = ("extract_country_code", "bucketize_age")
PREPROCESSORS = NUMERIC_BUCKETS + STRING_PREPROCESSORS
#: FuxiCTR 2.3 sequence encoders -> collapse-lab pooling (``MaskedAveragePooling`` divides the masked sum by the
#: number of non-padding tokens, ``fuxictr/pytorch/layers/pooling.py``)
POOLINGS = {"MaskedAveragePooling": "mean", "MaskedSumPooling": "sum"}
_NULLS = (None, "null", "None", "none")
_UNUSED = "collapse-lab ignores it"
#: column keys FuxiCTR 2.3 (``preprocess/feature_processor.py``, its configuration docs) reads and collapse-lab
#: does not use: what FuxiCTR does with each (``feature_encoder`` on a non-sequence column is handled apart)
FUXICTR_COLUMN_KEYS = {
    "encoder": "is not read by FuxiCTR 2.x (its docs' old name); did you mean `feature_encoder`? "
               "(ignored: pooling follows `feature_encoder`, default masked average)",
    "share_embedding": "makes FuxiCTR merge this field's vocabulary into the named field's and share one "
                       "table; collapse-lab gives every field its own table",
    "embedding_dim": "sets this field's own embedding width in FuxiCTR; collapse-lab uses the run's one "
                     "embedding_dim for every field",
    "emb_output_dim": "sets the output width of this field's feature encoder in FuxiCTR; " + _UNUSED,
    "pretrained_emb": "makes FuxiCTR load pretrained vectors for this field; collapse-lab trains every table "
                      "from its own initialisation",
    "pretrain_dim": "is the width of FuxiCTR's pretrained vectors; " + _UNUSED,
    "pretrain_usage": "says how FuxiCTR combines pretrained and trained vectors; " + _UNUSED,
    "freeze_emb": "freezes FuxiCTR's pretrained vectors; " + _UNUSED,
    "normalizer": "makes FuxiCTR scale a numeric column (fitted on the training split); collapse-lab embeds "
                  "the raw value",
    "category_processor": "makes FuxiCTR bucket the column (quantile_bucket, hash_bucket); collapse-lab "
                          "tokenizes the raw values",
    "num_buckets": "is the bucket count of FuxiCTR's category_processor; " + _UNUSED,
    "remap": "false makes FuxiCTR use raw integer values as ids; collapse-lab always builds a vocabulary",
    "vocab_size": "is read by FuxiCTR only with rebuild_dataset: false; collapse-lab always builds the "
                  "vocabulary from the training split",
}
#: top-level keys FuxiCTR 2.3 (``preprocess/build_dataset.py``) reads and collapse-lab does not use
FUXICTR_SPEC_KEYS = {
    "rebuild_dataset": "false makes FuxiCTR reuse existing files; collapse-lab rebuilds exactly when the content "
                       "hash changes",
    "valid_size": "makes FuxiCTR split validation rows off the training file; collapse-lab reads valid_data",
    "test_size": "makes FuxiCTR split test rows off the training file; collapse-lab reads test_data",
    "split_type": "is how FuxiCTR splits with valid_size/test_size; " + _UNUSED,
    "data_block_size": "sets FuxiCTR's parquet block size; " + _UNUSED,
    "num_buckets": "is the default bucket count of FuxiCTR's category_processor; " + _UNUSED,
    "group_id": "names FuxiCTR's group column for gAUC; " + _UNUSED,
}
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
    pooling: str | None = None  # sequences only: mean | sum (FuxiCTR's feature_encoder); None otherwise

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
    warnings: List[str] = field(default_factory=list)  # FuxiCTR keys accepted but not used (not in the recipe)

    @property
    def paths(self) -> Dict[str, Path]:
        return {"train": self.train_data, "valid": self.valid_data, "test": self.test_data}

    def recipe(self) -> Dict[str, Any]:
        """Everything that determines the output besides the input bytes (hashed into ``content_hash``)."""
        return {"dataset_id": self.dataset_id, "data_format": self.data_format, "sep": self.sep,
                "min_categr_count": self.min_categr_count, "label_col": self.label_col,
                "label_dtype": self.label_dtype, "feature_cols": [_column_recipe(c) for c in self.feature_cols],
                "extra": self.extra}

    def to_dict(self) -> Dict[str, Any]:
        return {**self.recipe(), "description": self.description,
                "paths": {k: str(v) for k, v in self.paths.items()}}


def _column_recipe(col: ColumnSpec) -> Dict[str, Any]:
    """A column's part of the recipe; ``pooling`` only for sequences, so specs without them keep their hash."""
    recipe = asdict(col)
    if recipe["pooling"] is None:
        del recipe["pooling"]
    return recipe


def _check_keys(entry: Dict[str, Any], valid: tuple, where: str, fuxictr: Dict[str, str] | None = None,
                warnings: List[str] | None = None, named: str | None = None) -> None:
    """Unknown keys are an error; keys of ``fuxictr`` (FuxiCTR's, unused here) append a warning instead, located
    by ``named`` (default ``where``)."""
    for key in entry:
        if key in valid:
            continue
        if fuxictr is not None and key in fuxictr and warnings is not None:
            warnings.append(f"{named or where}: `{key}` {fuxictr[key]}")
            continue
        raise UserError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid)}")


def pooling_of(encoder: Any, where: str) -> str:
    """The pooling (``mean`` | ``sum``) of a sequence column's FuxiCTR ``feature_encoder`` value.

    Accepts ``layers.MaskedAveragePooling()``, ``MaskedAveragePooling``, their ``MaskedSumPooling`` forms and
    null (absent or null: average, FuxiCTR's default encoder; see the module docstring for null).

        >>> pooling_of("layers.MaskedSumPooling()", "x"), pooling_of(None, "x")
        ('sum', 'mean')
    """
    if encoder in _NULLS:
        return "mean"
    name = str(encoder).strip()
    name = name[len("layers."):] if name.startswith("layers.") else name
    name = name[:-2] if name.endswith("()") else name
    if isinstance(encoder, str) and name in POOLINGS:
        return POOLINGS[name]
    raise UserError(f"{where}: feature_encoder {encoder!r} is not supported for a sequence; valid: "
                    "layers.MaskedAveragePooling() (default), layers.MaskedSumPooling(), null")


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
    if max_len is not None and not _positive_int(max_len):
        raise UserError(f"{where}: max_len must be a positive integer, got {max_len!r}")
    mcc = entry.get("min_categr_count")
    if mcc is not None and not _positive_int(mcc):
        raise UserError(f"{where}: min_categr_count must be a positive integer, got {mcc!r}")
    splitter = entry.get("splitter", "^")
    if not isinstance(splitter, str) or not splitter:
        raise UserError(f"{where}: splitter must be a non-empty string (e.g. '^' or '|'), got {splitter!r}")
    fill = entry.get("fill_na", entry.get("na_value"))
    if pre in STRING_PREPROCESSORS:
        dtype = "str"
    if ctype == "numeric" and pre is None and dtype == "str":
        dtype = "float"
    if pre in NUMERIC_BUCKETS and dtype == "str":  # bucketised cells are read as numbers: missing -> 0, not ""
        dtype = "float"
    pooling = pooling_of(entry.get("feature_encoder"), where) if ctype == "sequence" else None
    _check_fill(fill, dtype if pre not in STRING_PREPROCESSORS else "str", where)
    return ColumnSpec(name=str(name), type=ctype, dtype=dtype, fill_na=fill, min_categr_count=mcc,
                      preprocess=pre, splitter=splitter, max_len=max_len, padding=padding,
                      source=str(entry.get("source", "")), pooling=pooling)


def _encoder_warning(entry: Dict[str, Any], where: str) -> str | None:
    """What FuxiCTR does with a ``feature_encoder`` that collapse-lab reads differently (None: nothing to say)."""
    if "feature_encoder" not in entry:
        return None
    if entry.get("type", "categorical") != "sequence":
        return (f"{where}: `feature_encoder` on a {entry.get('type', 'categorical')} column makes FuxiCTR apply "
                "that layer to the field's embedding; collapse-lab ignores it")
    if entry["feature_encoder"] in _NULLS:
        return (f"{where}: `feature_encoder: null` leaves the sequence unpooled in FuxiCTR (for models that "
                "attend over it); collapse-lab's students need one vector per field: masked average pooling")
    return None


def _positive_int(value: Any) -> bool:
    """An int >= 1 that is not a bool (YAML ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_fill(fill: Any, dtype: str, where: str) -> None:
    """``fill_na`` of a numeric column must be a finite number; of a string column, a string or number."""
    if fill is None:
        return
    if dtype == "str":
        if isinstance(fill, bool) or not isinstance(fill, (str, int, float)):
            raise UserError(f"{where}: fill_na must be a string, got {fill!r}")
        return
    try:
        number = float(fill) if not isinstance(fill, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number):
        raise UserError(f"{where}: fill_na of a {dtype} column must be a finite number, got {fill!r}")


def _check_sep(sep: Any, source: str) -> str:
    """A CSV delimiter: one character, not a quote or a line break (pyarrow and ``csv`` both need that)."""
    if not isinstance(sep, str) or len(sep) != 1 or sep in ('"', "\n", "\r"):
        raise UserError(f"{source}: sep must be a single character other than a quote or a line break "
                        f"(e.g. ',' or '\\t'), got {sep!r}")
    return sep


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
    warnings: List[str] = []
    _check_keys(data, SPEC_KEYS, source, FUXICTR_SPEC_KEYS, warnings)
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
    if not _positive_int(mcc):
        raise UserError(f"{source}: min_categr_count must be a positive integer, got {mcc!r}")

    sep = _check_sep(data.get("sep", ","), source)
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
        names = entry["name"] if isinstance(entry["name"], list) else [entry["name"]]
        named = f"{where} ({', '.join(map(str, names))})"
        _check_keys(entry, COLUMN_KEYS, where, FUXICTR_COLUMN_KEYS, warnings, named)
        if entry.get("active", True) is False:
            continue
        note = _encoder_warning(entry, named)
        if note:
            warnings.append(note)
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
                       min_categr_count=mcc, sep=sep,
                       description=str(data.get("description", "")), source=source, warnings=warnings)


def load_spec(path: Union[str, Path], dataset_id: str | None = None, base_dir: Union[str, Path, None] = None,
              ) -> DatasetSpec:
    """Read and validate a YAML spec file (relative data paths resolve against ``base_dir`` or the cwd)."""
    import yaml

    from collapse_lab.io.inputs import read_text_file

    path = Path(path)
    text = read_text_file(path, "YAML spec file", missing="spec file not found")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise UserError(f"{path}: {where}invalid YAML ({getattr(exc, 'problem', None) or exc})") from None
    return spec_from_dict(data, source=str(path), base_dir=base_dir, dataset_id=dataset_id)
