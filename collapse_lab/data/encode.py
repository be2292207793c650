"""Turning raw column chunks into numbers: labels, numeric values, bucketised numbers, tokens and sequences.

Every function takes one pyarrow column of a :class:`~collapse_lab.data.reader.Chunk` and reports bad cells
as ``UserError("<file>: line N, column 'X': expected ..., got '...'")``.

Bucketing (``docs/data.md`` §1.2), applied after missing cells are filled:

* ``convert_to_bucket`` (FuxiCTR, Criteo): b(x) = ⌊(ln x)²⌋ if x > 2 else int(x) (truncation toward 0);
* ``bucketize_log2`` (BARS README): b(x) = ⌊log₂ x⌋ if x > 2 else 1.

Example:
    >>> import numpy as np
    >>> bucketize(np.array([0.0, 1.5, 2.0, 3.0, 10.0, 100.0]), "convert_to_bucket").tolist()
    [0, 1, 2, 1, 5, 21]
    >>> bucketize(np.array([0.0, 2.0, 3.0, 10.0]), "bucketize_log2").tolist()
    [1, 1, 1, 3]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collapse_lab.data.reader import location
from collapse_lab.data.spec import STRING_PREPROCESSORS, ColumnSpec
from collapse_lab.data.vocab import hash_tokens
from collapse_lab.errors import UserError

__all__ = ["Where", "Tokens", "bucketize", "parse_numbers", "parse_labels", "column_tokens", "sequence_tokens",
           "numeric_values", "numeric_field_values", "pad_sequences"]


@dataclass
class Where:
    """Where a chunk comes from (for error messages)."""

    path: Path
    fmt: str
    start: int  # first data row of the chunk (0-based)

    def at(self, i: int, column: str) -> str:
        return f"{location(self.path, self.fmt, self.start + int(i))}, column {column!r}"


@dataclass
class Tokens:
    """Distinct tokens of a chunk: ``hashes``/``texts``/``is_na`` per distinct token, ``inverse`` per cell."""

    hashes: np.ndarray  # uint64 (U,)
    texts: np.ndarray  # object (U,) token text (for vocab.json)
    is_na: np.ndarray  # bool (U,) the fill_na token (never in the vocabulary)
    inverse: np.ndarray  # int64 (cells,) index into the distinct tokens
    lengths: np.ndarray | None = None  # int64 (rows,) sequence lengths (sequence fields only)

    def counts(self) -> np.ndarray:
        return np.bincount(self.inverse, minlength=len(self.hashes)).astype(np.int64)


BUCKET_MIN = -float(2**62)  # bucket ids are int64; convert_to_bucket keeps int(x) for x <= 2


def bucketize(x: np.ndarray, method: str) -> np.ndarray:
    """Bucket ids (int64) of float values ``x`` (no NaN) with ``convert_to_bucket`` or ``bucketize_log2``."""
    x = np.asarray(x, dtype=np.float64)
    big = x > 2
    safe = np.where(big, x, 3.0)
    if method == "convert_to_bucket":
        return np.where(big, np.floor(np.log(safe) ** 2), np.trunc(x)).astype(np.int64)
    if method == "bucketize_log2":
        return np.where(big, np.floor(np.log2(safe)), 1.0).astype(np.int64)
    raise UserError(f"unknown preprocess {method!r}")


def _first_unparsable(values: Any) -> int | None:
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            float(v)
        except (TypeError, ValueError):
            return i
    return None


def parse_numbers(arr: Any, name: str, where: Where) -> np.ndarray:
    """float64 values of a column; missing cells become NaN; the first non-number raises a UserError."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        arr = pc.utf8_trim_whitespace(arr)
        try:
            out = pc.cast(arr, pa.float64())
        except pa.ArrowInvalid:
            texts = arr.to_pylist()
            i = _first_unparsable(texts)
            i = 0 if i is None else i
            raise UserError(f"{where.at(i, name)}: expected a number, got {texts[i]!r}") from None
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type):
        out = pc.cast(arr, pa.float64())
    else:
        raise UserError(f"{where.path}: column {name!r} has type {arr.type}, expected numbers")
    x = out.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    infinite = np.isinf(x)
    if infinite.any():  # "inf", "-Infinity", or a literal beyond float64 such as 1e400
        i = int(np.flatnonzero(infinite)[0])
        raise UserError(f"{where.at(i, name)}: expected a finite number, got {arr[i].as_py()!r}")
    return x


def parse_labels(arr: Any, name: str, where: Where) -> np.ndarray:
    """float32 0/1 labels; missing, NaN or other values raise a UserError naming the line."""
    x = parse_numbers(arr, name, where)
    bad = ~((x == 0.0) | (x == 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if np.isnan(x[i]):
            raw = arr[i].as_py()
            got = "a missing value" if raw is None else f"{raw!r}"
            raise UserError(f"{where.at(i, name)}: label is missing or NaN (got {got}); expected 0 or 1")
        raw = arr[i].as_py()
        raise UserError(f"{where.at(i, name)}: expected a label 0 or 1, got {raw!r}")
    return x.astype(np.float32)


def numeric_values(arr: Any, col: ColumnSpec, where: Where) -> np.ndarray:
    """float64 values of a numeric column with missing/NaN cells replaced by ``fill_na`` (default 0)."""
    x = parse_numbers(arr, col.name, where)
    fill = float(col.na_token)
    return np.where(np.isnan(x), fill, x)


def numeric_field_values(arr: Any, col: ColumnSpec, where: Where) -> np.ndarray:
    """float32 values of a numeric field (stored as float32): :func:`numeric_values`, refusing magnitudes beyond
    float32 (about 3.4e38), which would be stored as ±inf."""
    x = numeric_values(arr, col, where)
    big = np.abs(x) > np.finfo(np.float32).max
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise UserError(f"{where.at(i, col.name)}: {x[i]:g} is beyond the float32 range of numeric fields "
                        "(|x| <= 3.4e38); rescale the column or make it categorical with a preprocess")
    return x.astype(np.float32)


def _text(values: np.ndarray, integral: bool) -> np.ndarray:
    if integral:
        return np.array([str(int(v)) for v in values], dtype=object)
    return np.array([repr(float(v)) for v in values], dtype=object)


def _as_strings(arr: Any, name: str, where: Where) -> Any:
    """A column as pyarrow strings (numbers and booleans become their text); lists or structs are a UserError."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        hint = " (declare a list column as type: sequence)" if pa.types.is_list(arr.type) else ""
        raise UserError(f"{where.path}: column {name!r} has type {arr.type}, expected text or numbers{hint}") from None


def _string_preprocess(arr: Any, col: ColumnSpec, where: Where) -> Any:
    """FuxiCTR's KKBox hooks: ``extract_country_code`` and ``bucketize_age`` (missing -> "")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.preprocess == "extract_country_code":
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        text = _as_strings(arr, col.name, where)
        return pc.fill_null(pc.utf8_slice_codeunits(text, 0, 2), "")
    age = parse_numbers(arr, col.name, where)
    bucket = np.digitize(age, [10, 20, 30, 40, 50, 60], right=True) + 1  # (0,10] -> 1, ..., (60, inf) -> 7
    valid = (age >= 1) & (age <= 95)
    return pa.array(np.where(valid, bucket.astype(str), ""), type=pa.string())


def column_tokens(arr: Any, col: ColumnSpec, where: Where) -> Tokens:
    """Distinct tokens of a categorical column (raw strings, numbers, or bucketised numbers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.preprocess in STRING_PREPROCESSORS:
        arr = _string_preprocess(arr, col, where)
    elif col.preprocess or col.dtype in ("int", "float"):
        x = numeric_values(arr, col, where)
        if col.preprocess:
            low = x < BUCKET_MIN  # int(x) of the x <= 2 branch would overflow int64
            if low.any():
                i = int(np.flatnonzero(low)[0])
                raise UserError(f"{where.at(i, col.name)}: {x[i]:g} is below {BUCKET_MIN:g}, the smallest value "
                                f"{col.preprocess} can turn into a bucket id")
            x = bucketize(x, col.preprocess).astype(np.float64)
        uniq, inverse = np.unique(x, return_inverse=True)
        integral = bool(col.preprocess) or col.dtype == "int"
        is_na = np.zeros(len(uniq), dtype=bool) if col.preprocess else uniq == float(col.na_token)
        return Tokens(hash_tokens(uniq), _text(uniq, integral), is_na, inverse.astype(np.int64))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = _as_strings(arr, col.name, where)
    enc = pc.dictionary_encode(pc.fill_null(arr, str(col.na_token)))
    texts = enc.dictionary.to_numpy(zero_copy_only=False).astype(object)
    is_na = texts == str(col.na_token)
    return Tokens(hash_tokens(texts), texts, np.asarray(is_na, dtype=bool),
                  enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))


def sequence_tokens(arr: Any, col: ColumnSpec, where: Where) -> Tokens:
    """Distinct tokens of a sequence column (``splitter``-joined strings or parquet lists) plus lengths."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    na = str(col.na_token)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lists = pc.cast(arr, pa.list_(pa.string()))
        lists = pc.if_else(pc.is_null(lists), pa.scalar([], type=pa.list_(pa.string())), lists)
    else:
        arr = _as_strings(arr, col.name, where)
        lists = pc.split_pattern(pc.fill_null(arr, na), col.splitter)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.fill_null(pc.list_flatten(lists), na)
    enc = pc.dictionary_encode(flat)
    texts = enc.dictionary.to_numpy(zero_copy_only=False).astype(object)
    return Tokens(hash_tokens(texts), texts, np.asarray(texts == na, dtype=bool),
                  enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), lengths)


def pad_sequences(flat_ids: np.ndarray, lengths: np.ndarray, max_len: int, padding: str = "post") -> np.ndarray:
    """Place per-row id runs into a (rows, max_len) int32 matrix padded with 0.

    ``post`` keeps the first ``max_len`` ids of a row, left-aligned; ``pre`` keeps the last ``max_len``,
    right-aligned (FuxiCTR's ``pad_sequences`` with ``truncating = padding``).

    Example:
        >>> pad_sequences(np.array([1, 2, 3, 4, 5, 6]), np.array([3, 0, 1, 2]), 2).tolist()
        [[1, 2], [0, 0], [4, 0], [5, 6]]
        >>> pad_sequences(np.array([1, 2, 3, 4, 5, 6]), np.array([3, 0, 1, 2]), 2, "pre").tolist()
        [[2, 3], [0, 0], [0, 4], [5, 6]]
    """
    rows = len(lengths)
    out = np.zeros((rows, max_len), dtype=np.int32)  # (rows, max_len)
    row = np.repeat(np.arange(rows), lengths)
    pos = np.arange(len(flat_ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    col = pos if padding == "post" else pos - np.repeat(lengths, lengths) + max_len
    keep = (col >= 0) & (col < max_len)
    out[row[keep], col[keep]] = flat_ids[keep]
    return out
