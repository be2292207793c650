"""Checkpoints: model weights as safetensors, resumable trainer state as a weights-only ``.pt`` file.

* ``model.safetensors``: the model's canonical state dict (names in the README's "Run directory" table) plus
  string metadata (format, epoch, step, config hash...). Loading never unpickles anything.
* ``trainer_state.pt``: optimizer, LR schedule, early-stopping counters, epoch/step and every RNG state, built
  only from tensors and plain containers so that ``torch.load(path, weights_only=True)`` reads it
  (docs/architecture.md §6.4; the default of ``torch.load`` since PyTorch 2.6).

Both are written atomically (temporary name + rename) and their SHA-256 is returned for the manifest.
The resumable pair ``checkpoints/last/{model.safetensors,trainer_state.pt}`` is written as one directory
(:func:`save_checkpoint_pair`) so that a kill at any instant leaves one consistent pair.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "file_sha256", "save_weights", "load_weights", "save_trainer_state",
           "load_trainer_state", "save_checkpoint_pair", "recover_checkpoint_pair", "WEIGHTS_FILE", "STATE_FILE"]

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"

CHECKPOINT_FORMAT = "collapse-lab-weights-v1"
PathLike = Union[str, os.PathLike]


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(path: PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> str:
    """Write ``tensors`` to a safetensors file atomically and return its SHA-256.

    Every tensor is detached, moved to the CPU and copied into its own contiguous storage (slices of a stacked
    batched-form weight would otherwise share memory, which safetensors refuses). Metadata values are
    converted to strings (safetensors metadata is str -> str).

    Example:
        >>> import tempfile, pathlib, torch
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
        >>> sha = save_weights(p, {"w": torch.arange(6.).reshape(2, 3)}, {"epoch": 3})
        >>> t, meta = load_weights(p)
        >>> t["w"].tolist(), meta["epoch"], meta["format"], sha == file_sha256(p)
        ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], '3', 'collapse-lab-weights-v1', True)
    """
    from safetensors.torch import save_file

    flat = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    meta = {"format": CHECKPOINT_FORMAT}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=meta)
        with open(tmp, "rb") as fh:  # durable before the rename, like trainer_state.pt
            os.fsync(fh.fileno())
    return file_sha256(path)


def load_weights(path: PathLike, device: Any = "cpu") -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Read a safetensors checkpoint: ``(tensors, metadata)``; a clear UserError if missing or corrupt."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    return tensors, metadata


def save_trainer_state(path: PathLike, state: Mapping[str, Any]) -> str:
    """``torch.save`` a state of tensors and plain containers atomically; return its SHA-256.

    The state is checked by loading it back with ``weights_only=True`` from memory first, so a non-plain
    object is caught at save time rather than at resume time.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)  # raises if anything would need unpickling
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(buffer.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
    return file_sha256(path)


def load_trainer_state(path: PathLike) -> Dict[str, Any]:
    """Load ``trainer_state.pt`` with ``weights_only=True`` (never unpickles code)."""
    from collapse_lab.io.safe_load import load_plain_torch

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{path}: trainer state not found; cannot resume (the run never finished an epoch?)")
    try:
        state = load_plain_torch(path, "trainer state", mmap=False)
    except UserError as exc:
        raise UserError(f"unreadable trainer state, cannot resume: {exc}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a dict trainer state, got {type(state).__name__}")
    return state


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _old_name(final: Path) -> Path:
    return final.parent / f".{final.name}.old"


def save_checkpoint_pair(final: PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, Any],
                         state: Mapping[str, Any]) -> Tuple[str, str]:
    """Write weights and trainer state into directory ``final`` as one unit; return both SHA-256.

    Both files go into a fresh temporary sibling ``.<name>.*.tmp`` and are fsynced; then the previous pair is
    renamed to ``.<name>.old``, the new one renamed to ``final`` and the old one deleted. At every instant either
    ``final`` or ``.<name>.old`` is a complete pair (:func:`recover_checkpoint_pair` picks it up after a kill),
    never weights of one epoch with the state of another.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    old = _old_name(final)
    try:
        weights_sha = save_weights(tmp / WEIGHTS_FILE, tensors, metadata)
        state_sha = save_trainer_state(tmp / STATE_FILE, state)
        os.chmod(tmp, 0o755)
        _fsync_dir(tmp)
        if final.exists():
            if old.exists():  # a complete ``final`` exists, so an ``.old`` beside it is a leftover
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return weights_sha, state_sha


def recover_checkpoint_pair(final: PathLike) -> bool:
    """After a kill: restore ``.<name>.old`` if ``final`` is missing, delete unfinished ``.<name>.*.tmp``.

    Call it only while holding the run's lock (nothing else may be writing there). Returns whether a complete
    pair is now at ``final``.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return False
    old = _old_name(final)
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    if not final.exists() and old.is_dir():
        os.replace(old, final)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)
    return (final / WEIGHTS_FILE).is_file() and (final / STATE_FILE).is_file()
