"""Reading tensors for spectral analysis: safetensors, torch state dicts and ``.npy`` matrices, lazily by rows.

* ``.safetensors`` — opened with ``safetensors.safe_open``; rows are read slice by slice (``get_slice``), so a
  table never has to fit in memory.
* ``.pt/.pth/.bin/.model/.ckpt`` — ``torch.load(..., weights_only=True)`` (memory-mapped when the file is a
  zip checkpoint, :func:`collapse_lab.io.safe_load.load_plain_torch`). A pickle that needs arbitrary code is
  **refused** as not a plain tensor checkpoint (never with torch's advice to disable the check); nested checkpoints
  (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped and ``module.`` / ``_orig_mod.`` prefixes
  dropped. FuxiCTR ``.model`` files are such state dicts.
* ``.npy`` — one matrix, read by positioned chunk reads (memory bounded by the chunk).
* an in-memory ``nn.Module`` or state dict — :class:`StateDictTensors`, unwrapped like a torch checkpoint.

Every failure (missing, truncated, corrupt, refused) is a one-line :class:`~collapse_lab.errors.UserError`
that names the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Tuple

import numpy as np

from collapse_lab.errors import UserError
from collapse_lab.io.inputs import check_regular_file
from collapse_lab.io.safe_load import NPY_ERRORS, first_line, load_plain_torch, numpy_message

__all__ = [
    "RowSource",
    "TensorInfo",
    "TensorFile",
    "StateDictTensors",
    "open_tensor_file",
    "TORCH_SUFFIXES",
    "TENSOR_SUFFIXES",
    "describe_entries",
    "load_counts",
]

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".model", ".ckpt")
TENSOR_SUFFIXES = (".safetensors", ".npy") + TORCH_SUFFIXES
#: keys under which checkpoints commonly nest their state dict (unwrapped in this order)
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "params")
STRIP_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one stored tensor."""

    name: str
    shape: Tuple[int, ...]
    dtype: str  # e.g. "float32", "bfloat16", "int64"

    @property
    def is_float(self) -> bool:
        return "float" in self.dtype or self.dtype in ("F16", "F32", "F64", "BF16")

    def __str__(self) -> str:
        return f"{self.name} {self.dtype}{list(self.shape)}"


class RowSource:
    """A 2-D matrix read lazily by rows: ``shape``, ``dtype`` and ``source[a:b]`` (rows a..b−1).

    Example:
        >>> m = RowSource((4, 2), "float32", lambda a, b: np.arange(8.0).reshape(4, 2)[a:b])
        >>> m.rows(1, 3)[0:2].tolist()
        [[2.0, 3.0], [4.0, 5.0]]
    """

    def __init__(self, shape: Tuple[int, int], dtype: Any, read: Callable[[int, int], Any], offset: int = 0) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = dtype
        self._read = read
        self._offset = offset

    def __getitem__(self, item: slice) -> Any:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("RowSource supports contiguous row slices only")
        start, stop, _ = item.indices(self.shape[0])
        return self._read(self._offset + start, self._offset + max(start, stop))

    def rows(self, start: int, stop: int) -> RowSource:
        """A view of rows ``start..stop-1`` (e.g. one field of a concatenated table)."""
        if not 0 <= start <= stop <= self.shape[0]:
            raise UserError(f"rows {start}:{stop} are outside a matrix with {self.shape[0]} rows")
        return RowSource((stop - start, self.shape[1]), self.dtype, self._read, self._offset + start)


class TensorFile(ABC):
    """A file of named tensors. ``entries`` lists every tensor (any rank); ``matrix(name)`` reads a 2-D one (or an
    (out, in, 1) conv1d/CIN weight as its (out, in) matrix)."""

    kind = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: Dict[str, TensorInfo] = {}
        self.other: List[str] = []  # non-tensor entries, e.g. "epoch: int"

    def matrix(self, name: str) -> RowSource:
        info = self.entries.get(name)
        if info is None:
            raise UserError(f"{self.path}: no tensor {name!r}; found: {describe_entries(self.entries.values())}")
        if len(info.shape) == 3 and info.shape[2] == 1:  # a conv1d / CIN weight (out, in, 1): the (out, in) matrix
            inner = self._matrix(info)
            return RowSource(inner.shape, inner.dtype, lambda a, b: inner[a:b][..., 0])
        if len(info.shape) != 2:
            raise UserError(f"{self.path}: tensor {name!r} has shape {list(info.shape)}, expected 2-D")
        return self._matrix(info)

    @abstractmethod
    def _matrix(self, info: TensorInfo) -> RowSource:
        """A row-sliceable view of the 2-D tensor ``info``."""


def describe_entries(infos: Any, limit: int = 12) -> str:
    """A one-line listing of tensor infos, truncated after ``limit``."""
    infos = list(infos)
    if not infos:
        return "nothing"
    text = ", ".join(str(i) for i in infos[:limit])
    return text + (f", ... and {len(infos) - limit} more" if len(infos) > limit else "")


class SafetensorsFile(TensorFile):
    """A ``.safetensors`` file read by row slices. numpy-framework slices copy the rows out (about 10× faster than
    touching the pages of a memory-mapped torch view); bfloat16, which numpy lacks, goes through torch."""

    kind = "safetensors"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from safetensors import SafetensorError, safe_open

        self._open = lambda framework: safe_open(str(path), framework=framework)
        self._handles: Dict[str, Any] = {}
        try:
            self._handles["np"] = self._open("np")
            for name in self._handles["np"].keys():
                sl = self._handles["np"].get_slice(name)
                self.entries[name] = TensorInfo(name, tuple(sl.get_shape()), _st_dtype(sl.get_dtype()))
        except (SafetensorError, OSError, ValueError) as exc:
            msg = f"{path}: not a readable safetensors file (truncated or corrupt?): {first_line(exc)}"
            raise UserError(msg) from None

    def _matrix(self, info: TensorInfo) -> RowSource:
        framework = "pt" if info.dtype == "bfloat16" else "np"
        if framework not in self._handles:
            self._handles[framework] = self._open(framework)
        sl = self._handles[framework].get_slice(info.name)

        def read(a: int, b: int) -> Any:
            try:
                return sl[a:b]
            except Exception as exc:  # the file changed or is damaged past its header
                raise UserError(f"{self.path}: cannot read rows {a}:{b} of {info.name!r}: {first_line(exc)}") from None

        if framework == "pt":
            import torch

            return RowSource(info.shape, torch.bfloat16, read)
        return RowSource(info.shape, np.dtype(info.dtype), read)


def _st_dtype(code: str) -> str:
    table = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
             "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
    return table.get(code, code.lower())


class TorchFile(TensorFile):
    kind = "torch"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import torch

        obj = load_plain_torch(path, "torch checkpoint")
        if isinstance(obj, torch.Tensor):
            obj = {path.stem: obj}
        if not isinstance(obj, Mapping):
            raise UserError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
        self._read_mapping(obj)

    def _read_mapping(self, obj: Mapping) -> None:
        """Unwrap, flatten and de-prefix a (nested) state dict into :attr:`entries`."""
        self._tensors: Dict[str, Any] = {}
        _flatten(_unwrap(obj), "", self._tensors, self.other)
        self._tensors = _strip_prefixes(self._tensors)
        for name, t in self._tensors.items():
            self.entries[name] = TensorInfo(name, tuple(t.shape), str(t.dtype).replace("torch.", ""))

    def _matrix(self, info: TensorInfo) -> RowSource:
        t = self._tensors[info.name]
        return RowSource(info.shape, t.dtype, lambda a, b: t[a:b])


class StateDictTensors(TorchFile):
    """An in-memory ``nn.Module`` or state dict (``{name: tensor or numpy array}``, nested wrappers allowed),
    read like a torch checkpoint without a file round trip. Tensors stay where they are (a GPU tensor is
    copied to the host chunk by chunk); ``path`` is only the label used in messages and the ``source`` column.

    Example:
        >>> t = StateDictTensors({"model": {"module.w": np.eye(3, dtype=np.float32)}})
        >>> t.entries["w"].shape, t.path
        ((3, 3), 'state_dict')
    """

    kind = "state_dict"

    def __init__(self, obj: Any) -> None:  # noqa: D107 - no file to load (TorchFile.__init__ is not called)
        import torch

        if isinstance(obj, torch.nn.Module):
            label, obj = "module", obj.state_dict()
        elif isinstance(obj, Mapping):
            label = "state_dict"
        else:
            raise UserError(f"expected a path, an nn.Module or a state dict, got a {type(obj).__name__}")
        TensorFile.__init__(self, label)  # type: ignore[arg-type]  # a label, not a file
        self._read_mapping(_as_tensors(obj))
        if not self.entries:
            raise UserError(f"the {label} holds no tensor")


def _as_tensors(obj: Any) -> Any:
    """The same nesting with numpy arrays turned into (shared-memory) torch tensors."""
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Mapping):
        return {k: _as_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_as_tensors(v) for v in obj]
    return obj


def _has_tensor(obj: Any) -> bool:
    import torch

    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, Mapping):
        return any(_has_tensor(v) for v in obj.values())
    return False


def _unwrap(obj: Mapping) -> Mapping:
    """Descend into {"state_dict": ...}-style wrappers (also ignores optimizer states next to them)."""
    while True:
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping) and _has_tensor(obj[k])), None)
        if inner is None:
            return obj
        obj = inner


def _flatten(obj: Any, prefix: str, out: Dict[str, Any], other: List[str]) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        out[prefix or "tensor"] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, other)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out, other)
    else:
        other.append(f"{prefix}: {type(obj).__name__}")


def _strip_prefixes(tensors: Dict[str, Any]) -> Dict[str, Any]:
    for p in STRIP_PREFIXES:
        if tensors and all(k.startswith(p) for k in tensors):
            tensors = {k[len(p):]: v for k, v in tensors.items()}
    return tensors


class NpyFile(TensorFile):
    """One ``.npy`` matrix. C-ordered arrays are read by explicit positioned reads (``np.fromfile`` after the
    header parsed by ``numpy.lib.format``), so memory stays bounded by the chunk even for a 45M-row file
    (a memory map would keep every page it touched resident); Fortran-ordered ones fall back to a memory map."""

    kind = "numpy"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        fmt = np.lib.format
        try:
            with open(path, "rb") as fh:
                version = fmt.read_magic(fh)
                shape, fortran, dtype = (fmt.read_array_header_1_0(fh) if version == (1, 0)
                                         else fmt.read_array_header_2_0(fh))
                self._offset = fh.tell()
            if dtype.hasobject:
                raise ValueError("object arrays are not read (allow_pickle=False)")
            self._array = np.load(path, mmap_mode="r", allow_pickle=False) if fortran or len(shape) != 2 else None
            expected = self._offset + int(np.prod(shape)) * dtype.itemsize
            if path.stat().st_size < expected:
                raise ValueError(f"file is {path.stat().st_size} bytes, the header needs {expected}")
        except NPY_ERRORS as exc:
            raise UserError(f"{path}: not a readable .npy array (truncated or corrupt?): "
                            f"{numpy_message(exc)}") from None
        self._dtype, self._shape = dtype, tuple(int(s) for s in shape)
        self.entries[path.stem] = TensorInfo(path.stem, self._shape, str(dtype))

    def _matrix(self, info: TensorInfo) -> RowSource:
        if self._array is not None:
            arr = self._array
            return RowSource(info.shape, arr.dtype, lambda a, b: arr[a:b])
        cols, dtype, path = self._shape[1], self._dtype, self.path

        def read(a: int, b: int) -> np.ndarray:
            offset = self._offset + a * cols * dtype.itemsize
            return np.fromfile(path, dtype=dtype, count=(b - a) * cols, offset=offset).reshape(b - a, cols)

        return RowSource(info.shape, dtype, read)


def open_tensor_file(path: Path) -> TensorFile:
    """Open a tensor file by its suffix (``.safetensors``, ``.npy`` or a torch checkpoint).

    Raises:
        UserError: missing, unreadable, corrupt, refused (needs arbitrary code) or of an unknown kind.
    """
    path = check_regular_file(Path(path), "tensor file", missing="no such file or directory")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UserError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return SafetensorsFile(path)
    if suffix == ".npy":
        return NpyFile(path)
    if suffix in TORCH_SUFFIXES:
        return TorchFile(path)
    raise UserError(f"{path}: unknown tensor file type {suffix!r}; expected one of {', '.join(TENSOR_SUFFIXES)}")


def load_counts(counts_dir: Path | None, field: str, rows: int) -> np.ndarray:
    """Training-split id frequencies of ``field`` (``<dataset>/counts/<field>.npy``), checked against the table."""
    if counts_dir is None:
        raise UserError(f"field {field!r}: frequency/trained weighting needs the training-split counts, but no "
                        "run manifest with dataset.path was found")
    path = counts_dir / f"{field}.npy"
    if not path.exists():
        raise UserError(f"{path}: no such file (training-split counts of field {field!r})")
    try:
        counts = np.load(path, allow_pickle=False)
    except NPY_ERRORS as exc:
        raise UserError(f"{path}: not a readable .npy array: {numpy_message(exc)}") from None
    if counts.shape != (rows,):
        raise UserError(f"{path}: has shape {list(counts.shape)}, expected [{rows}] (the rows of the table)")
    return counts
