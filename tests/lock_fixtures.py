"""Helpers for the lock tests: trainers with ``train``'s signature that take time, and a lock-holding process.

``python tests/lock_fixtures.py hold LOCKFILE`` takes the lock, prints ``held`` and sleeps until killed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from sweep_fixtures import fake_train

__all__ = ["slow_train", "sleepy_train", "SLOW_SECONDS"]

SLOW_SECONDS = 0.5


def slow_train(config: Any, out_dir: Any = None, **kwargs: Any) -> Any:
    """:func:`sweep_fixtures.fake_train` after ``SLOW_SECONDS`` (so that two sweeps overlap on every run)."""
    time.sleep(SLOW_SECONDS)
    return fake_train(config, out_dir, **kwargs)


def sleepy_train(config: Any, out_dir: Any = None, **kwargs: Any) -> Any:
    """Leave ``<sweep>/worker-<pid>`` and train "forever" (until the process is killed)."""
    (Path(out_dir).parent.parent / f"worker-{os.getpid()}").write_text(str(os.getpid()))
    time.sleep(120)
    return fake_train(config, out_dir, **kwargs)


if __name__ == "__main__":
    if sys.argv[1:2] == ["hold"]:
        from collapse_lab.io.lock import DirLock

        DirLock(sys.argv[2]).acquire()
        print("held", flush=True)
        time.sleep(120)
