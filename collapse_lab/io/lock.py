"""Advisory directory locks held by the live process (``flock(2)``), so two processes never train one run.

A lock is a small file beside what it guards (``<parent>/.<name>.lock`` for a run directory, whose contents are
swapped at the end of an ``--overwrite``; ``<sweep>/.sweep.lock`` for a sweep record). It is locked with
``fcntl.flock(LOCK_EX)``: the kernel releases a flock when the last descriptor of the holder closes, which
includes ``kill -9`` and a crash, so a stale lock cannot exist — the next process simply gets it ("stale-lock
takeover" without pid files or timeouts; flock(2), Linux man-pages). The holder's pid is written into the file
for messages only. The holder unlinks the file when it releases the lock, and a process that locked a file
which was unlinked meanwhile retries on the new one, so lock files do not pile up.

Locks are re-entrant within a process (a sweep worker holds a run's lock, then ``train`` asks for it again):
a second ``flock`` on a new descriptor of the same file would otherwise conflict with the first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

from collapse_lab.errors import UserError

__all__ = ["LockBusy", "DirLock", "run_lock_path", "lock_run", "is_locked"]

PathLike = Union[str, os.PathLike]

_HELD: Dict[str, Tuple[int, int]] = {}  # lock file (absolute) -> (fd, depth) held by this process
_GUARD = threading.Lock()


class LockBusy(UserError):
    """Another live process holds the lock."""

    def __init__(self, message: str, holder: Optional[int]) -> None:
        super().__init__(message)
        self.holder = holder


def run_lock_path(run_dir: PathLike) -> Path:
    """The lock file of a run directory: ``<parent>/.<name>.lock`` (outside it, so a swap keeps it)."""
    run_dir = Path(run_dir).absolute()
    return run_dir.parent / f".{run_dir.name}.lock"


def _same_file(fd: int, path: Path) -> bool:
    """Whether the locked descriptor is still the file at ``path`` (not unlinked by a releasing holder)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def _holder(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DirLock:
    """An exclusive ``flock`` on ``path`` (created if needed); use as a context manager or acquire/release.

    Args:
        path: the lock file.
        what: what it guards, for the busy message (``"run directory runs/a"``).
        wait: for ``with``: block until the holder releases it instead of raising :class:`LockBusy`.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / ".x.lock"
        >>> with DirLock(p, "x"):
        ...     is_locked(p)  # held by this very process counts as held
        True
        >>> is_locked(p)
        False
    """

    def __init__(self, path: PathLike, what: str = "", wait: bool = False) -> None:
        self.path = Path(path).absolute()
        self.what = what or str(self.path)
        self.wait = wait  # what ``with`` does when another process holds it: wait, or raise LockBusy
        self._depth = 0  # how many times this object holds it (nested ``with`` on one object)

    def acquire(self, wait: bool = False, poll: float = 0.2) -> DirLock:
        """Take the lock; with ``wait`` block until the holder exits, else raise :class:`LockBusy` (after 0.5 s).

        Re-entrant per process, not per thread: the toolkit holds a run's lock in one thread at a time.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.path.parent.resolve() / self.path.name  # one key per file, however it was reached
        key = str(self.path)
        with _GUARD:
            if key in _HELD:  # re-entrant within this process
                fd, depth = _HELD[key]
                _HELD[key] = (fd, depth + 1)
                self._depth += 1
                return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + 0.5  # is_locked() probes hold a shared lock for microseconds
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if _same_file(fd, self.path):
                        break
                    # the holder unlinked the file on release after we opened it: lock the new file instead
                    os.close(fd)
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    if not wait and time.monotonic() >= deadline:
                        holder = _holder(self.path)
                        who = f"process {holder}" if holder else "another process"
                        raise LockBusy(f"{self.what}: in use by {who} (lock {self.path}); wait for it to finish",
                                       holder) from None
                    time.sleep(poll if wait else 0.05)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        with _GUARD:
            _HELD[key] = (fd, 1)
        self._depth += 1
        return self

    def release(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        key = str(self.path)
        with _GUARD:
            fd, depth = _HELD[key]
            if depth > 1:
                _HELD[key] = (fd, depth - 1)
                return
            del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # leave nothing behind; waiters notice the unlink (_same_file) and retry
        os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> DirLock:
        return self.acquire(wait=self.wait)

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def lock_run(run_dir: PathLike, wait: bool = False) -> Iterator[DirLock]:
    """Hold the lock of run directory ``run_dir`` (raises :class:`LockBusy` if another process trains it)."""
    lock = DirLock(run_lock_path(run_dir), f"run directory {run_dir}").acquire(wait=wait)
    try:
        yield lock
    finally:
        lock.release()


def is_locked(path: PathLike) -> bool:
    """Whether a live process (this one included) holds the lock file ``path`` (a missing file is free)."""
    path = Path(path).absolute()
    if path.parent.exists():
        path = path.parent.resolve() / path.name
    with _GUARD:
        if str(path) in _HELD:
            return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the probe's shared lock
    return False
