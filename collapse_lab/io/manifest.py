"""``manifest.json``: the schema-versioned index of a run (the only file analysis needs to find everything).

Schema (version 1; README "Run directory")::

    {"schema_version": 1, "kind": "collapse-lab-run", "status": "running" | "complete" | "failed",
     "error": null | str, "created": iso, "updated": iso, "package_version": str,
     "git": {"commit", "dirty"}, "environment": {...}, "device": str, "form": "loop" | "batched",
     "config": {...}, "config_hash": str, "seeds": {"run": int, "students": [int, ...]},
     "dataset": {"id", "path", "hash", "rows": {"train", "valid", "test"}},
     "model": {...CTREnsemble.describe()...},
     "checkpoints": [{"name", "path", "epoch", "step", "sha256", "metrics": {"valid": {...}}}],
     "probe": null | {"path", "split", "rows", "sha256"},
     "results": null | {"best_epoch", "epochs_run", "valid": {...}, "test": {...}, "summary": {...}},
     "timing": {"train_samples_per_s": [...per epoch...]}}

Every save rewrites the whole file atomically and bumps ``updated``. The schema constants and the one reader,
:func:`read_manifest`, live in :mod:`collapse_lab.io.contract` (re-exported here); this module is the writer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Mapping, Union

from collapse_lab.io.atomic import atomic_write_json
from collapse_lab.io.contract import MANIFEST_KIND, MANIFEST_SCHEMA_VERSION, STATUSES, read_manifest

__all__ = ["MANIFEST_SCHEMA_VERSION", "MANIFEST_KIND", "STATUSES", "Manifest", "read_manifest", "now_iso"]

def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Manifest:
    """A mutable manifest bound to its file."""

    def __init__(self, path: Union[str, Path], data: Dict[str, Any]) -> None:
        self.path = Path(path)
        self.data = data

    @classmethod
    def create(cls, path: Union[str, Path], **fields: Any) -> Manifest:
        """A new ``running`` manifest with provenance filled in; ``fields`` set config, seeds, dataset, model..."""
        from collapse_lab.__about__ import __version__
        from collapse_lab.utils.provenance import environment_info, git_info

        stamp = now_iso()
        data: Dict[str, Any] = {
            "schema_version": MANIFEST_SCHEMA_VERSION, "kind": MANIFEST_KIND, "status": "running", "error": None,
            "created": stamp, "updated": stamp, "package_version": __version__, "git": git_info(),
            "environment": environment_info(), "device": None, "form": None, "config": None, "config_hash": None,
            "seeds": None, "dataset": None, "model": None, "checkpoints": [], "probe": None, "results": None,
            "timing": {"train_samples_per_s": []},
        }
        unknown = set(fields) - set(data)
        if unknown:
            raise KeyError(f"unknown manifest fields {sorted(unknown)}")
        data.update(fields)
        return cls(path, data)

    @classmethod
    def load(cls, path: Union[str, Path]) -> Manifest:
        return cls(path, read_manifest(path))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def update(self, **fields: Any) -> None:
        self.data.update(fields)

    def set_status(self, status: str, error: Union[str, None] = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} not in {STATUSES}")
        self.data["status"], self.data["error"] = status, error

    def set_checkpoint(self, entry: Mapping[str, Any]) -> None:
        """Insert or replace (by ``name``) one checkpoint entry; ``best`` stays first."""
        entries = [e for e in self.data["checkpoints"] if e["name"] != entry["name"]]
        entries.append(dict(entry))
        entries.sort(key=lambda e: (e["name"] != "best", e["name"]))
        self.data["checkpoints"] = entries

    def save(self) -> None:
        self.data["updated"] = now_iso()
        atomic_write_json(self.path, self.data)
