"""``meta.json`` of a processed dataset: content hashes, per-split statistics, provenance.

Every processed dataset records a ``content_hash``: the SHA-256 of a canonical JSON document holding the
preparation recipe (spec or generator parameters), the SHA-256 of every input file and
:data:`PREPARE_VERSION`. Preparing again with the same hash is a no-op; any change in inputs, spec or the
preparation code's version rebuilds the dataset.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterable, Union

from collapse_lab.__about__ import __version__
from collapse_lab.errors import UserError

__all__ = ["PREPARE_VERSION", "META_SCHEMA_VERSION", "hash_file", "content_hash", "read_meta", "build_meta",
           "is_up_to_date", "needs_build"]

#: bump when the output of a preparation changes for the same inputs (invalidates every content hash)
PREPARE_VERSION = 1
META_SCHEMA_VERSION = 1


def hash_file(path: Union[str, Path], chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in 4 MiB chunks (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(recipe: Any, file_hashes: Iterable[str] = ()) -> str:
    """SHA-256 of ``{"recipe", "inputs", "prepare_version"}`` as canonical JSON (sorted keys)."""
    doc = {"recipe": recipe, "inputs": list(file_hashes), "prepare_version": PREPARE_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def read_meta(directory: Union[str, Path]) -> Dict[str, Any] | None:
    """The ``meta.json`` of ``directory`` or ``None`` when absent/unreadable."""
    path = Path(directory) / "meta.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def is_up_to_date(directory: Union[str, Path], digest: str) -> bool:
    """Whether ``directory`` is a complete processed dataset with content hash ``digest``."""
    meta = read_meta(directory)
    return bool(meta) and meta.get("content_hash") == digest and (Path(directory) / "feature_map.json").exists()


def build_meta(dataset_id: str, source: str, digest: str, rows: Dict[str, int], positive_rate: Dict[str, float],
               **extra: Any) -> Dict[str, Any]:
    """The ``meta.json`` document (``extra`` adds e.g. ``spec``, ``inputs``, ``generator``, ``oracle``)."""
    return {
        "schema_version": META_SCHEMA_VERSION,
        "dataset_id": dataset_id,
        "source": source,
        "content_hash": digest,
        "rows": rows,
        "positive_rate": positive_rate,
        "prepared": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "prepare_version": PREPARE_VERSION,
        **extra,
    }


def needs_build(directory: Union[str, Path], digest: str, dataset_id: str, overwrite: bool = False) -> bool:
    """Decide whether to (re)build a processed dataset at ``directory``.

    Returns ``False`` when it is complete with the same content hash (a no-op, unless ``overwrite``), ``True``
    when it is missing, stale (same ``dataset_id``, other hash) or ``overwrite`` is set. A directory holding
    something else is never replaced without ``overwrite``.
    """
    directory = Path(directory)
    if not directory.exists():
        return True
    if overwrite:
        return True
    if is_up_to_date(directory, digest):
        return False
    meta = read_meta(directory)
    if meta and meta.get("dataset_id") == dataset_id:
        return True
    raise UserError(f"{directory}: exists and is not a processed copy of {dataset_id!r}; "
                    "pass --overwrite (overwrite=True) to replace it")
