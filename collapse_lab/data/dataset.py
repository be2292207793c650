"""Processed datasets on disk and fast batch iteration.

Layout of a processed dataset directory (written by ``collapse-lab data prepare``)::

    <dir>/feature_map.json            FeatureMap (see feature_map.py)
    <dir>/meta.json                   dataset_id, content hash, spec, row counts, (synthetic) oracle metrics
    <dir>/<split>/ids.npy             int32 (rows, C)   field-local ids, memory-mapped at read time
    <dir>/<split>/labels.npy          float32 (rows,)   0/1 labels
    <dir>/<split>/values.npy          float32 (rows, n_numeric)   only when there are raw numeric fields
    <dir>/<split>/probs.npy           float32 (rows,)   only for synthetic data: the true click probability
    <dir>/counts/<field>.npy          int64 (vocab_size,) id frequencies in the training split

Splits are ``train``, ``valid`` and ``test``. Batches are cut by index slicing of the memory-mapped arrays
(no per-sample Python collation).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Union

import numpy as np

from collapse_lab.data.feature_map import FeatureMap
from collapse_lab.errors import UserError

__all__ = ["SPLITS", "Split", "ProcessedDataset", "Batch", "BatchIterator", "write_split"]

SPLITS = ("train", "valid", "test")


@dataclass
class Split:
    """One split of a processed dataset; arrays are read-only memory maps."""

    name: str
    ids: np.ndarray  # int32 (rows, C)
    labels: np.ndarray  # float32 (rows,)
    values: np.ndarray | None = None  # float32 (rows, n_numeric)
    probs: np.ndarray | None = None  # float32 (rows,) true probabilities (synthetic data only)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def positive_rate(self) -> float:
        return float(np.mean(self.labels, dtype=np.float64)) if len(self) else float("nan")


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: missing array; prepare the dataset again") from None
    except ValueError as exc:
        raise UserError(f"{path}: unreadable array ({exc})") from None


def write_split(directory: Union[str, Path], name: str, ids: np.ndarray, labels: np.ndarray,
                values: np.ndarray | None = None, probs: np.ndarray | None = None) -> None:
    """Write one split's arrays into ``directory/name/`` (the caller makes the whole directory atomic)."""
    out = Path(directory) / name
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "ids.npy", np.ascontiguousarray(ids, dtype=np.int32))
    np.save(out / "labels.npy", np.ascontiguousarray(labels, dtype=np.float32))
    if values is not None:
        np.save(out / "values.npy", np.ascontiguousarray(values, dtype=np.float32))
    if probs is not None:
        np.save(out / "probs.npy", np.ascontiguousarray(probs, dtype=np.float32))


class ProcessedDataset:
    """A processed dataset directory: feature map, metadata and memory-mapped splits."""

    def __init__(self, root: Union[str, Path], mmap: bool = True) -> None:
        self.root = Path(root)
        if not (self.root / "feature_map.json").exists():
            raise UserError(f"{self.root}: not a processed dataset (no feature_map.json); "
                            "run `collapse-lab data prepare` first")
        self.feature_map = FeatureMap.load(self.root / "feature_map.json")
        meta_path = self.root / "meta.json"
        self.meta: Dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self._mmap = mmap
        self._splits: Dict[str, Split] = {}

    @property
    def dataset_id(self) -> str:
        return self.feature_map.dataset_id

    @property
    def content_hash(self) -> str | None:
        return self.meta.get("content_hash")

    def split(self, name: str) -> Split:
        """The split ``name`` (``train``, ``valid`` or ``test``), memory-mapped on first access."""
        if name not in SPLITS:
            raise UserError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        if name not in self._splits:
            d = self.root / name
            if not d.exists():
                raise UserError(f"{d}: split {name!r} is missing")
            optional = {k: _load_array(d / f"{k}.npy", self._mmap) if (d / f"{k}.npy").exists() else None
                        for k in ("values", "probs")}
            self._splits[name] = Split(name, _load_array(d / "ids.npy", self._mmap),
                                       _load_array(d / "labels.npy", self._mmap), **optional)
        return self._splits[name]

    def counts(self, field: str) -> np.ndarray | None:
        """Training-split id frequencies of ``field`` (int64, length vocab_size), if recorded."""
        path = self.root / "counts" / f"{field}.npy"
        return np.load(path, allow_pickle=False) if path.exists() else None


@dataclass
class Batch:
    """One mini-batch. ``ids``: int64 (B, C); ``labels``: float32 (B,); ``values``: float32 (B, n_numeric).

    ``masks`` (only when the iterator knows the feature map and it has sequence fields): ``{field: bool
    (B, max_len)}``, True at real tokens (ids != padding_idx); a row's sequence length is ``mask.sum(1)``.
    """

    ids: Any
    labels: Any
    values: Any = None
    index: Any = None  # row indices into the split (numpy int64), for probes and debugging
    masks: Any = None  # {sequence field: bool (B, max_len)} or None

    def to(self, device: Any, non_blocking: bool = False) -> Batch:
        def move(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=non_blocking)

        masks = None if self.masks is None else {k: move(v) for k, v in self.masks.items()}
        return Batch(move(self.ids), move(self.labels), move(self.values), self.index, masks)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


_END = object()


def _is_cuda(device: Any) -> bool:
    import torch

    return torch.device(device).type == "cuda"


class BatchIterator:
    """Iterate over a split in mini-batches of torch tensors.

    Shuffling uses ``numpy.random.default_rng(seed + 1_000_003 * epoch)``, so epoch ``e`` of a run always sees
    the same order (resuming at an epoch boundary reproduces an uninterrupted run). Batches are index slices
    of the memory-mapped arrays; with a CUDA ``device`` they are copied from pinned memory with
    ``non_blocking`` transfers. With ``prefetch > 0`` a background thread prepares up to ``prefetch`` batches
    ahead (the gathers from the memory maps and the host-to-device copies overlap the training step).

    Args:
        split: the split to iterate over.
        batch_size: rows per batch.
        shuffle: permute rows every epoch.
        seed: base seed of the permutation.
        drop_last: drop the final incomplete batch.
        device: torch device for the tensors (``None`` = CPU).
        feature_map: when given, batches carry ``masks`` of the sequence fields.
        prefetch: number of batches prepared ahead in a background thread (0 = none).
        resident: with a CUDA ``device``, copy the split to the device once (ids as int32) and slice every batch
            there; each epoch's order goes over in one copy, so a batch costs no host work or transfer. The
            batches hold the same values as without it (ids widened to int64 on the device). Ignored without a
            CUDA ``device``; ``prefetch`` is then unused.
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, device: Any = None, feature_map: FeatureMap | None = None,
                 prefetch: int = 0, resident: bool = False) -> None:
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if prefetch < 0:
            raise UserError(f"prefetch must be >= 0, got {prefetch}")
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.device = device
        self.prefetch = int(prefetch)
        self.resident = bool(resident) and device is not None and _is_cuda(device)
        self._on_device: Dict[str, Any] | None = None  # the split's arrays on the device (resident mode)
        self.epoch = 0
        self._sequences = [] if feature_map is None else [
            (f.name, f.column, f.width, f.padding_idx) for f in feature_map.fields if f.type == "sequence"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> np.ndarray | None:
        if not self.shuffle:
            return None
        return np.random.default_rng(self.seed + 1_000_003 * self.epoch).permutation(len(self.split))

    def _make(self, index: np.ndarray) -> Batch:
        import torch

        s = self.split
        if index.dtype == np.int64 and len(index) and index[-1] - index[0] == len(index) - 1 and \
                np.all(np.diff(index) == 1):
            sl = slice(int(index[0]), int(index[-1]) + 1)  # contiguous: a plain slice of the memory map
            ids, labels = s.ids[sl], s.labels[sl]
            values = None if s.values is None else s.values[sl]
        else:
            ids, labels = s.ids[index], s.labels[index]
            values = None if s.values is None else s.values[index]
        pin = self.device is not None and torch.device(self.device).type == "cuda"

        def tensor(a: np.ndarray, dtype: Any) -> Any:
            t = torch.from_numpy(np.array(a, dtype=dtype, order="C"))  # a writable copy, never the memory map
            return t.pin_memory() if pin else t

        batch = Batch(tensor(ids, np.int64), tensor(labels, np.float32),
                      None if values is None else tensor(values, np.float32), index)
        if self.device is not None:
            batch = batch.to(self.device, non_blocking=True)
        if self._sequences:
            batch.masks = {name: batch.ids[:, col:col + width] != pad  # (B, max_len)
                           for name, col, width, pad in self._sequences}
        return batch

    def _batches(self) -> Iterator[Batch]:
        n = len(self.split)
        order = self._order()
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, n)
            index = order[start:end] if order is not None else np.arange(start, end, dtype=np.int64)
            if order is not None:
                index = np.sort(index)  # sorted gathers are cache friendly; batch content is unchanged
            yield self._make(index)

    def _device_arrays(self) -> Dict[str, Any]:
        import torch

        if self._on_device is None:
            s = self.split

            def put(a: np.ndarray | None, dtype: Any) -> Any:
                if a is None:
                    return None
                with warnings.catch_warnings():  # a read-only memory map, only read by the copy to the device
                    warnings.simplefilter("ignore", UserWarning)
                    return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(self.device)

            self._on_device = {"ids": put(s.ids, np.int32), "labels": put(s.labels, np.float32),
                               "values": put(s.values, np.float32)}
        return self._on_device

    def _resident_batches(self) -> Iterator[Batch]:
        """The batches of :meth:`_batches`, sliced from the device copy of the split."""
        import torch

        arrays = self._device_arrays()
        n = len(self.split)
        order = self._order()
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        starts = range(0, stop, self.batch_size)
        if order is not None:  # each batch's rows sorted, as in _batches; the whole epoch in one transfer
            order = np.concatenate([np.sort(order[a:a + self.batch_size]) for a in starts] or [order[:0]])
            host = torch.from_numpy(order)
            on_device = (host.pin_memory() if _is_cuda(self.device) else host).to(self.device, non_blocking=True)
        for start in starts:
            end = min(start + self.batch_size, n)
            if order is None:
                index = np.arange(start, end, dtype=np.int64)
                ids, labels = arrays["ids"][start:end], arrays["labels"][start:end]
                values = None if arrays["values"] is None else arrays["values"][start:end]
            else:
                index, rows = order[start:end], on_device[start:end]
                ids, labels = arrays["ids"].index_select(0, rows), arrays["labels"].index_select(0, rows)
                values = None if arrays["values"] is None else arrays["values"].index_select(0, rows)
            batch = Batch(ids.long(), labels, values, index)
            if self._sequences:
                batch.masks = {name: batch.ids[:, col:col + width] != pad
                               for name, col, width, pad in self._sequences}
            yield batch

    def __iter__(self) -> Iterator[Batch]:
        if self.resident:
            yield from self._resident_batches()
            return
        if self.prefetch == 0:
            yield from self._batches()
            return
        import queue
        import threading

        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for batch in self._batches():
                    if not put(batch):
                        return
                put(_END)
            except BaseException as exc:  # handed to the consumer, re-raised there
                put(exc)

        thread = threading.Thread(target=work, name="collapse-lab-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()
