"""Build a processed dataset from a spec in two streaming passes (bounded memory).

Pass 1 reads the training file chunk by chunk and counts tokens per categorical/sequence field (hash counts,
:mod:`collapse_lab.data.vocab`), validating labels and numbers as it goes; the valid/test files are read for
their labels only (row counts, label checks). The vocabularies are then fixed (training split only, FuxiCTR
``min_categr_count``/OOV semantics). Pass 2 reads all three files again and writes ``ids``/``labels``/``values``
through ``numpy`` memory maps, so memory stays at one chunk plus the vocabularies whatever the file size.

Output (``dataset.py`` layout) is built in a temporary sibling directory and renamed when complete; a failed
preparation leaves nothing behind. The output also holds ``vocab.json`` (``{field: [token of id 1, 2, ...]}``).
``meta.json`` records the content hash of the inputs and spec; preparing again with the same hash is a no-op.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np

from collapse_lab.data.dataset import SPLITS
from collapse_lab.data.encode import (
    Where,
    column_tokens,
    numeric_field_values,
    pad_sequences,
    parse_labels,
    sequence_tokens,
)
from collapse_lab.data.feature_map import FeatureMap, FieldInfo
from collapse_lab.data.meta import build_meta, content_hash, hash_file, needs_build
from collapse_lab.data.reader import iter_chunks, read_header
from collapse_lab.data.spec import ColumnSpec, DatasetSpec
from collapse_lab.data.vocab import TokenCounter, Vocabulary
from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_directory, atomic_write_json

__all__ = ["PrepareResult", "prepare_spec"]

log = logging.getLogger(__name__)


@dataclass
class PrepareResult:
    """What :func:`prepare_spec` did."""

    path: Path
    dataset_id: str
    content_hash: str
    skipped: bool  # True when an identical processed dataset already existed
    rows: Dict[str, int]
    seconds: float
    warnings: List[str] = field(default_factory=list)  # the spec's FuxiCTR keys that were accepted, not used


class _Field:
    """Per-field state across both passes."""

    def __init__(self, col: ColumnSpec, min_count: int) -> None:
        self.col = col
        self.kind = col.field_type
        self.min_count = col.min_categr_count or min_count
        self.counter = TokenCounter()
        self.longest = 0
        self.vocab: Vocabulary | None = None
        self.max_len = 1
        self.column = 0  # first column in ids, or column in values
        self.train_counts: np.ndarray | None = None

    @property
    def width(self) -> int:
        return {"categorical": 1, "sequence": self.max_len, "numeric": 0}[self.kind]

    def tokens(self, arr: Any, where: Where) -> Any:
        return sequence_tokens(arr, self.col, where) if self.kind == "sequence" else column_tokens(arr, self.col, where)

    def count(self, arr: Any, where: Where) -> None:
        """Pass 1: count training tokens (or just validate numbers)."""
        if self.kind == "numeric":
            numeric_field_values(arr, self.col, where)
            return
        tok = self.tokens(arr, where)
        keep = ~tok.is_na
        self.counter.add(tok.hashes[keep], tok.counts()[keep])
        if tok.lengths is not None and len(tok.lengths):
            self.longest = max(self.longest, int(tok.lengths.max()))

    def finalize(self) -> None:
        if self.kind == "numeric":
            return
        self.vocab = Vocabulary.build(*self.counter.result(), min_count=self.min_count)
        self.counter = TokenCounter()  # free the counts
        if self.kind == "sequence":
            self.max_len = self.col.max_len or max(self.longest, 1)
        self.train_counts = np.zeros(self.vocab.vocab_size, dtype=np.int64)

    def encode(self, arr: Any, where: Where, train: bool) -> np.ndarray:
        """Pass 2: ids (rows, width) int32, or float32 values (rows,) for a numeric field."""
        if self.kind == "numeric":
            return numeric_field_values(arr, self.col, where)
        tok = self.tokens(arr, where)
        uid = self.vocab.encode(tok.hashes)
        uid[tok.is_na] = 0 if self.kind == "sequence" else self.vocab.oov_idx
        if train:
            self.vocab.remember(uid, tok.texts)
        flat = uid[tok.inverse]
        if self.kind == "sequence":
            out = pad_sequences(flat, tok.lengths, self.max_len, self.col.padding)  # (rows, max_len)
        else:
            out = flat[:, None]  # (rows, 1)
        if train:
            self.train_counts += np.bincount(out.ravel(), minlength=self.vocab.vocab_size)
        return out

    def info(self) -> FieldInfo:
        extra = {"dtype": self.col.dtype, "source": self.col.source}
        if self.kind == "numeric":
            extra["fill_na"] = float(self.col.na_token)
            return FieldInfo(name=self.col.name, type="numeric", column=self.column, width=0, vocab_size=1,
                             padding_idx=None, oov_idx=None, extra=extra)
        extra.update({"min_categr_count": self.min_count, "num_tokens": self.vocab.num_tokens,
                      "fill_na": self.col.na_token})
        if self.col.preprocess:
            extra["preprocess"] = self.col.preprocess
        if self.kind == "sequence":
            extra.update({"splitter": self.col.splitter, "padding": self.col.padding})
        return FieldInfo(name=self.col.name, type=self.kind, column=self.column, width=self.width,
                         vocab_size=self.vocab.vocab_size, padding_idx=0, oov_idx=self.vocab.oov_idx,
                         max_len=self.max_len if self.kind == "sequence" else None, extra=extra,
                         pooling=self.col.pooling if self.kind == "sequence" else None)


def _pass1(spec: DatasetSpec, fields: List[_Field], progress: bool | None) -> Dict[str, int]:
    rows: Dict[str, int] = {}
    for split, path in spec.paths.items():
        cols = [spec.label_col] + ([f.col.name for f in fields] if split == "train" else [])
        n = 0
        desc = f"{split}: {'counting tokens' if split == 'train' else 'checking labels'}"
        for chunk in iter_chunks(path, spec.data_format, cols, spec.sep, desc=desc, progress=progress):
            where = Where(path, spec.data_format, chunk.start)
            parse_labels(chunk.table.column(spec.label_col), spec.label_col, where)
            if split == "train":
                for f in fields:
                    f.count(chunk.table.column(f.col.name), where)
            n += chunk.num_rows
        if n == 0:
            raise UserError(f"{path}: no data rows; the {split} split must not be empty")
        rows[split] = n
    return rows


def _pass2(spec: DatasetSpec, fields: List[_Field], rows: Dict[str, int], tmp: Path,
           progress: bool | None) -> Dict[str, float]:
    id_fields = [f for f in fields if f.kind != "numeric"]
    num_fields = [f for f in fields if f.kind == "numeric"]
    n_cols = sum(f.width for f in id_fields)
    rate: Dict[str, float] = {}
    cols = [spec.label_col] + [f.col.name for f in fields]
    for split in SPLITS:
        path, n = spec.paths[split], rows[split]
        (tmp / split).mkdir()
        ids = np.lib.format.open_memmap(tmp / split / "ids.npy", mode="w+", dtype=np.int32, shape=(n, n_cols))
        labels = np.lib.format.open_memmap(tmp / split / "labels.npy", mode="w+", dtype=np.float32, shape=(n,))
        values = (np.lib.format.open_memmap(tmp / split / "values.npy", mode="w+", dtype=np.float32,
                                            shape=(n, len(num_fields))) if num_fields else None)
        done, positives = 0, 0.0
        for chunk in iter_chunks(path, spec.data_format, cols, spec.sep, desc=f"{split}: encoding",
                                 progress=progress):
            where = Where(path, spec.data_format, chunk.start)
            m = chunk.num_rows
            if done + m > n:
                raise UserError(f"{path}: changed while being prepared (more rows than in the first pass)")
            sl = slice(done, done + m)
            y = parse_labels(chunk.table.column(spec.label_col), spec.label_col, where)
            labels[sl] = y
            positives += float(y.sum(dtype=np.float64))
            for f in id_fields:
                ids[sl, f.column:f.column + f.width] = f.encode(chunk.table.column(f.col.name), where,
                                                                split == "train")
            for f in num_fields:
                values[sl, f.column] = f.encode(chunk.table.column(f.col.name), where, False)
            done += m
        if done != n:
            raise UserError(f"{path}: changed while being prepared ({done} rows now, {n} in the first pass)")
        for arr in (ids, labels, values):
            if arr is not None:
                arr.flush()
        del ids, labels, values
        rate[split] = positives / n
    return rate


def prepare_spec(spec: DatasetSpec, out_dir: Union[str, Path], *, overwrite: bool = False,
                 progress: bool | None = None, extra_meta: Dict[str, Any] | None = None) -> PrepareResult:
    """Prepare ``spec`` into ``out_dir`` (a no-op when an identical processed dataset is already there).

    Args:
        spec: a validated :class:`~collapse_lab.data.spec.DatasetSpec`.
        out_dir: the processed-dataset directory (usually ``<data_root>/<dataset_id>``).
        overwrite: rebuild even when up to date; replace a directory that holds something else.
        progress: show progress bars (``None``: only on a terminal).
        extra_meta: additional entries for ``meta.json`` (e.g. a built-in dataset's provenance).

    Returns:
        A :class:`PrepareResult`.

    Raises:
        UserError: missing file/column, bad row, label or number, empty split (nothing is written).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    for path in spec.paths.values():
        read_header(path, spec.data_format, spec.sep)  # missing/empty files fail before any hashing
    inputs = [{"split": s, "path": str(p), "bytes": p.stat().st_size, "sha256": hash_file(p)}
              for s, p in spec.paths.items()]
    digest = content_hash(spec.recipe(), [i["sha256"] for i in inputs])
    if not needs_build(out_dir, digest, spec.dataset_id, overwrite):
        meta_rows = _rows_of(out_dir)
        return PrepareResult(out_dir, spec.dataset_id, digest, True, meta_rows, time.perf_counter() - t0,
                             list(spec.warnings))

    fields = [_Field(c, spec.min_categr_count) for c in spec.feature_cols]
    log.info("preparing %s: pass 1 (vocabularies from %s)", spec.dataset_id, spec.train_data)
    rows = _pass1(spec, fields, progress)
    id_col = val_col = 0
    for f in fields:
        f.finalize()
        if f.kind == "numeric":
            f.column, val_col = val_col, val_col + 1
        else:
            f.column, id_col = id_col, id_col + f.width
    fmap = FeatureMap(dataset_id=spec.dataset_id, fields=[f.info() for f in fields], label_col=spec.label_col)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        log.info("preparing %s: pass 2 (encoding)", spec.dataset_id)
        rate = _pass2(spec, fields, rows, tmp, progress)
        (tmp / "counts").mkdir()
        vocab = {}
        for f in fields:
            if f.kind == "numeric":
                continue
            counts = f.train_counts.copy()
            counts[0] = 0  # padding is never a token
            np.save(tmp / "counts" / f"{f.col.name}.npy", counts)
            vocab[f.col.name] = [None if t is None else str(t) for t in f.vocab.tokens]
        atomic_write_json(tmp / "vocab.json", vocab)
        fmap.save(tmp / "feature_map.json")
        seconds = time.perf_counter() - t0
        extra = dict(extra_meta or {})
        source = extra.pop("source", "spec")
        atomic_write_json(tmp / "meta.json", build_meta(
            spec.dataset_id, source, digest, rows, rate, spec=spec.to_dict(), inputs=inputs,
            description=spec.description, prepare_seconds=round(seconds, 3), **extra))
    return PrepareResult(out_dir, spec.dataset_id, digest, False, rows, time.perf_counter() - t0,
                         list(spec.warnings))


def _rows_of(out_dir: Path) -> Dict[str, int]:
    from collapse_lab.data.meta import read_meta

    return dict((read_meta(out_dir) or {}).get("rows", {}))
