"""``sweep.json``, the record of a sweep: its id, spec, executor and per run the config, status, error, seconds and
attempts, saved under the sweep's lock ``.sweep.lock`` and merged with what other processes recorded meanwhile
(docs/architecture.md §8.2). :mod:`collapse_lab.sweep.runner` fills it in as runs finish.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_write_json
from collapse_lab.io.lock import DirLock
from collapse_lab.sweep.executor import Executor
from collapse_lab.sweep.grid import SweepSpec

__all__ = ["SWEEP_SCHEMA_VERSION", "SweepRecord", "sweep_id", "sweep_lock", "now"]

SWEEP_SCHEMA_VERSION = 1


def now() -> str:
    """The current UTC time, ISO 8601 to the second (the timestamps of ``sweep.json`` and sweep logs)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sweep_id(name: str, run_names: Sequence[str]) -> str:
    """``<name>-<hash8>``: the sweep name plus a digest of the set of its run names.

    Example:
        >>> sweep_id("quick", ["b", "a"]) == sweep_id("quick", ["a", "b"])
        True
    """
    digest = hashlib.sha256("\n".join(sorted(run_names)).encode("utf-8")).hexdigest()[:8]
    return f"{name}-{digest}"


def _load_state(path: Path) -> Dict[str, Any]:
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); move it away to start the sweep record afresh") from None
    if not isinstance(state, dict) or state.get("kind") != "collapse-lab-sweep":
        raise UserError(f"{path}: not a collapse-lab sweep record (kind != 'collapse-lab-sweep')")
    return state


class SweepRecord:
    """``sweep.json``: merged with an existing record so an extended sweep keeps its earlier runs.

    Every save happens under the sweep's lock and re-reads the file first, then lays over it only the fields this
    process set, so two processes recording different runs of one sweep never erase each other's entries.
    """

    def __init__(self, sweep_dir: Path, spec: SweepSpec, executor: Executor) -> None:
        from collapse_lab.utils.provenance import git_info

        self.path = sweep_dir / "sweep.json"
        self.lock = sweep_lock(sweep_dir)
        self.mine: Dict[str, Dict[str, Any]] = {}  # run -> fields this process set
        self.state: Dict[str, Any] = {
            "schema_version": SWEEP_SCHEMA_VERSION,
            "kind": "collapse-lab-sweep",
            "id": None,
            "name": spec.name,
            "created": now(),
            "updated": now(),
            "git": git_info(),
            "spec": spec.to_dict(),
            "executor": executor.describe(),
            "runs": {},
        }
        self._merge(_load_state(self.path))

    def _merge(self, disk: Mapping[str, Any]) -> None:
        runs = {r["name"]: dict(r) for r in disk.get("runs", []) if isinstance(r, dict) and "name" in r}
        for name, fields in self.mine.items():
            runs.setdefault(name, {"name": name}).update(fields)
        self.state["runs"] = runs
        self.state["created"] = disk.get("created", self.state["created"])

    def set_run(self, name: str, **fields: Any) -> None:
        self.mine.setdefault(name, {}).update(fields)
        self.state["runs"].setdefault(name, {"name": name}).update(fields)

    def save(self) -> None:
        with self.lock:
            self._merge(_load_state(self.path))
            runs = self.state["runs"]
            self.state["id"] = sweep_id(self.state["name"], list(runs))
            self.state["updated"] = now()
            atomic_write_json(self.path, {**self.state, "runs": list(runs.values())})

    @property
    def id(self) -> str:
        return sweep_id(self.state["name"], list(self.state["runs"]))


def sweep_lock(sweep_dir: Union[str, Path]) -> DirLock:
    """The lock of a sweep's record and planning (``<sweep_dir>/.sweep.lock``); ``with`` waits for it."""
    return DirLock(Path(sweep_dir) / ".sweep.lock", f"sweep {sweep_dir}", wait=True)
