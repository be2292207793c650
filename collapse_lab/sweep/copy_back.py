"""Copy-back: train a run where the sweep directory is not visible, and bring its run directory home as a tar.

When the workers of a remote executor (:mod:`collapse_lab.sweep.ray_executor`) do not share a filesystem with
the driver, each run is trained in a scratch directory on the worker and returned as a tar archive (bytes in
the executor's object store) that the driver unpacks into ``<sweep>/runs/<name>`` atomically: it is extracted
into a temporary sibling and renamed into place (:func:`collapse_lab.io.atomic.atomic_directory`), so a run
directory is either the old one or the whole new one, never half of each.

The sweep semantics stay those of :func:`collapse_lab.sweep.runner.execute_run` (docs/architecture.md §8.2):
the *driver* holds the run's lock (:mod:`collapse_lab.io.lock`) from before submission until the archive is in
place, so two sweeps on one directory never train one run twice; a run found ``complete`` under the lock is not
trained; an interrupted run (``running``) is shipped to the worker with its last checkpoint and resumed there;
a failed, corrupt or stale one is trained from scratch. A run directory is replaced by what comes back only when the
new run is complete or there was none before (a failed attempt never erases an earlier run).
"""

from __future__ import annotations

import dataclasses
import io
import resource
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from collapse_lab.io.atomic import atomic_directory
from collapse_lab.io.lock import DirLock, LockBusy, run_lock_path
from collapse_lab.sweep.executor import Executor, Outcome
from collapse_lab.sweep.runner import RunOutcome, RunTask, execute_run
from collapse_lab.sweep.staleness import sweep_run_status

__all__ = ["RemoteRun", "pack_dir", "unpack_dir", "execute_run_elsewhere", "run_with_copy_back"]

PathLike = Union[str, Path]


def pack_dir(path: PathLike) -> bytes:
    """The contents of directory ``path`` as a gzip'd tar archive (member names relative to ``path``).

    Example:
        >>> d = Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("hi")
        >>> sorted(tarfile.open(fileobj=io.BytesIO(pack_dir(d))).getnames())
        ['a.txt']
    """
    path = Path(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:  # checkpoints barely compress
        for item in sorted(path.iterdir()):
            tar.add(item, arcname=item.name)
    return buffer.getvalue()


def _check_member(member: tarfile.TarInfo) -> None:
    """Refuse what a run directory never holds: absolute names, ``..``, links and special files."""
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
        raise ValueError(f"refusing archive member {member.name!r} (only plain files and folders inside the run)")


def unpack_dir(data: bytes, path: PathLike) -> Path:
    """Unpack an archive of :func:`pack_dir` into directory ``path`` atomically, replacing what was there."""
    path = Path(path)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_member(member)
        with atomic_directory(path, overwrite=True) as tmp:
            for member in members:  # plain files and folders only (checked above), so no extraction filter needed
                if member.isdir():
                    (tmp / member.name).mkdir(parents=True, exist_ok=True)
                    continue
                target = tmp / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has contents
                with source, open(target, "wb") as fh:
                    fh.write(source.read())
    return path


@dataclass
class RemoteRun:
    """A run sent to a worker without the sweep directory: the task, and its interrupted run directory if any."""

    task: RunTask
    archive: Optional[bytes] = None


def execute_run_elsewhere(remote: RemoteRun) -> Tuple[RunOutcome, Optional[bytes]]:
    """Worker side: train ``remote.task`` in a scratch directory; return its outcome and the run as an archive.

    The scratch directory (``$TMPDIR/collapse-lab-*/runs/<name>``) starts from ``remote.archive`` (an
    interrupted run, resumed by :func:`~collapse_lab.sweep.runner.execute_run`) or empty, and is removed
    afterwards. The archive is ``None`` when training left no run directory.
    """
    task = remote.task
    with tempfile.TemporaryDirectory(prefix="collapse-lab-") as scratch:
        run_dir = Path(scratch) / "runs" / task.name
        run_dir.parent.mkdir()
        if remote.archive is not None:
            unpack_dir(remote.archive, run_dir)
        outcome = execute_run(dataclasses.replace(task, run_dir=str(run_dir), wait=False))
        archive = pack_dir(run_dir) if run_dir.is_dir() else None
    return outcome, archive


def run_with_copy_back(executor: Executor, tasks: Sequence[RunTask]) -> Iterator[Outcome]:
    """Driver side: run ``tasks`` through ``executor`` with copy-back; yields ``(index, RunOutcome | exception)``
    as :meth:`Executor.run` does for :func:`~collapse_lab.sweep.runner.execute_run`.

    Every run's lock is taken here (a run another live process holds comes back ``busy`` at once, or is waited
    for with ``task.wait``) and held until its archive is unpacked or its task failed.
    """
    held: Dict[int, DirLock] = {}
    remote: List[RemoteRun] = []
    positions: List[int] = []
    _allow_open_files(len(tasks) + 256)  # one descriptor per held lock: a Criteo grid has hundreds of runs
    try:
        for index, task in enumerate(tasks):
            start = time.perf_counter()
            try:
                lock = DirLock(run_lock_path(task.run_dir), f"run directory {task.run_dir}").acquire(wait=task.wait)
            except LockBusy as exc:
                yield index, RunOutcome(task.name, "busy", time.perf_counter() - start, str(exc))
                continue
            status = sweep_run_status(task.run_dir, task.dataset_hash)  # stale: trained again, swapped in if complete
            if status == "complete":  # finished by another sweep meanwhile
                lock.release()
                yield index, RunOutcome(task.name, "complete", time.perf_counter() - start, trained=False)
                continue
            held[index] = lock
            archive = pack_dir(task.run_dir) if status == "running" else None  # resumed on the worker
            remote.append(RemoteRun(task, archive))
            positions.append(index)
        for k, result in executor.run(execute_run_elsewhere, remote):
            index = positions[k]
            try:
                outcome = _bring_home(tasks[index], result)
            finally:
                held.pop(index).release()
            yield index, outcome
    finally:
        for lock in held.values():
            lock.release()


def _allow_open_files(count: int) -> None:
    """Raise this process's soft limit on open files towards ``count`` (up to the hard limit; getrlimit(2))."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _bring_home(task: RunTask, result: Any) -> Any:
    """Unpack a worker's archive into ``task.run_dir`` (see the module docstring for when) and return the outcome."""
    if isinstance(result, BaseException):  # the worker itself died: the exception is the outcome
        return result
    outcome, archive = result
    had_run = Path(task.run_dir).exists()
    if archive is not None and (outcome.status == "complete" or not had_run):
        try:
            unpack_dir(archive, task.run_dir)
        except Exception as exc:  # noqa: BLE001 - recorded as the run's failure; the sweep goes on
            return dataclasses.replace(outcome, status="failed", traceback=None,
                                       error=f"copy-back into {task.run_dir} failed: {type(exc).__name__}: {exc}")
    return outcome
