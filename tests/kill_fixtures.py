"""Child processes for the kill tests: train a tiny run with slowed writes and report where it is.

``start_training`` forks (from a forkserver that has already imported torch and collapse_lab, so a child starts in
milliseconds instead of seconds) a process running :func:`train_child`, which

* slows every ``os.replace`` and both halves of the checkpoint pair by ``delay`` seconds, so that SIGKILLs at
  random instants often land inside a write (the windows the issue is about);
* sends ``"start"`` just before training, ``"pair"`` when it enters a checkpoint-pair write, ``"done"`` at the end.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Dict, Tuple

__all__ = ["start_training", "train_child", "forkserver"]

try:  # in the forkserver (which preloads this module): create tqdm's multiprocessing lock once, so that killed
    from tqdm.auto import tqdm  # children do not each leak a semaphore to the resource tracker

    tqdm.get_lock()
except ImportError:  # pragma: no cover - tqdm is a dependency
    pass

_CONTEXT = None


def forkserver() -> Any:
    """A forkserver context whose server pre-imports the training stack (started once per test session)."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch._dynamo", "sklearn.metrics", "tqdm.auto",
                                    "collapse_lab.training.api",
                                    "collapse_lab.training.trainer", "collapse_lab.training.evaluation",
                                    "collapse_lab.data.dataset", "collapse_lab.models", "collapse_lab.strategies",
                                    "kill_fixtures"])
        _CONTEXT = ctx
    return _CONTEXT


def _slowed(fn: Any, delay: float) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay)
        out = fn(*args, **kwargs)
        time.sleep(delay)
        return out

    return wrapper


def train_child(conn: Any, config: Dict[str, Any], out: str, resume: bool, overwrite: bool, delay: float) -> None:
    import collapse_lab.io.checkpoint as checkpoint
    import collapse_lab.training.trainer as trainer
    from collapse_lab.training.api import train

    os.replace = _slowed(os.replace, delay)
    checkpoint.save_weights = _slowed(checkpoint.save_weights, delay)
    checkpoint.save_trainer_state = _slowed(checkpoint.save_trainer_state, delay)
    pair = trainer.save_checkpoint_pair

    def announced_pair(*args: Any, **kwargs: Any) -> Any:
        conn.send("pair")
        return pair(*args, **kwargs)

    trainer.save_checkpoint_pair = announced_pair
    conn.send("start")
    try:
        train(config, out, resume=resume, overwrite=overwrite, device="cpu", console=False, progress=False)
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        conn.send(f"error {type(exc).__name__}: {exc}")
        raise SystemExit(1) from None
    conn.send("done")


def start_training(config: Dict[str, Any], out: Path, resume: bool = False, overwrite: bool = False,
                   delay: float = 0.0) -> Tuple[Any, Any]:
    """Start :func:`train_child` in a forked process; returns ``(process, connection)``."""
    ctx = forkserver()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=train_child, args=(child, config, str(out), resume, overwrite, delay), daemon=True)
    proc.start()
    child.close()
    return proc, parent
