"""Executors: where the runs of a sweep execute.

The sweep logic (:mod:`collapse_lab.sweep.runner`) only calls :meth:`Executor.run`, which takes a picklable
module-level function and a list of picklable tasks and yields ``(index, result)`` pairs *as tasks finish*.
A task that raises, or whose worker dies, yields ``(index, exception)`` instead, so one bad run never stops the
others. Executors are looked up by name in :data:`EXECUTORS`.

``local`` runs tasks in this process (``jobs=1``) or in ``jobs`` worker processes started with the *spawn*
method (``concurrent.futures.ProcessPoolExecutor``). Each task runs with ``threads`` torch threads (default
``cpu_count // jobs``) so K workers do not oversubscribe the cores: on a busy 2-core machine two OpenMP threads
per process made training ~10x slower than one (measured: 1.3k vs 16–24k samples/s). Workers exit when the
sweep process dies, even by ``kill -9`` (:func:`_exit_with_parent`).

``ray`` (:mod:`collapse_lab.sweep.ray_executor`, registered when :mod:`collapse_lab.sweep` is imported; Ray
from the ``distributed`` extra) submits every task as a Ray task with declared CPUs and GPUs and yields in
``ray.wait`` order, turning ``ray.exceptions.RayTaskError`` into the task's own exception; where the workers do
not see the sweep directory, runs come back as tar archives (:mod:`collapse_lab.sweep.copy_back`;
docs/architecture.md §8.3).
"""

from __future__ import annotations

import abc
import ctypes
import inspect
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.registry import Registry

__all__ = ["Executor", "LocalExecutor", "EXECUTORS", "make_executor"]

Outcome = Tuple[int, Union[Any, BaseException]]

EXECUTORS = Registry("executor")


class Executor(abc.ABC):
    """Runs ``fn(task)`` for every task and reports each outcome as soon as it is known."""

    #: how many tasks run at the same time (used for progress display and thread budgets)
    jobs: int = 1

    @abc.abstractmethod
    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        """Yield ``(index, result)`` per task in completion order; ``result`` is the exception if it failed."""

    #: whether runs are trained away from the sweep directory and copied back (set by :meth:`prepare`)
    copy_back: bool = False

    def describe(self) -> Dict[str, Any]:
        """A JSON-able description recorded in ``sweep.json``."""
        return {"executor": type(self).__name__, "jobs": self.jobs}

    def prepare(self, runs_dir: Path) -> None:
        """Called once by the sweep before its runs are submitted (a remote executor connects and decides
        :attr:`copy_back` here); nothing to do on this machine."""
        return None

    def task_device(self, device: str) -> str:
        """The device a run of this executor trains on when the sweep asks for ``device``."""
        return device


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_with_parent(parent: int, poll: float = 1.0) -> None:
    """Make this worker die with the sweep process ``parent`` (a killed sweep must not leave runs training).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (prctl(2)) has the kernel kill the worker when its parent dies.
    Everywhere: a daemon thread polls ``os.getppid()``, which changes when the parent dies (the worker is
    re-parented), and ends the process; it also covers a parent that died before the ``prctl`` call.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog still works
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)  # the run's lock dies with us; the next sweep resumes the run

    threading.Thread(target=watch, name="collapse-lab-parent-watchdog", daemon=True).start()


def _init_worker(threads: int, parent: int) -> None:
    """Worker initialiser: exit with the parent, and cap torch/BLAS threads so ``jobs`` workers share the cores."""
    _exit_with_parent(parent)
    _limit_threads(threads)


def _limit_threads(threads: int) -> None:
    """Cap torch/BLAS threads so ``jobs`` workers share the cores."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Sequential (``jobs=1``) or a pool of ``jobs`` spawned processes on this machine.

    Example:
        >>> sorted(LocalExecutor(jobs=1).run(abs, [-1, 2, -3]))
        [(0, 1), (1, 2), (2, 3)]
    """

    def __init__(self, jobs: Optional[int] = 1, threads: Optional[int] = None) -> None:
        jobs = 1 if jobs is None else jobs
        if int(jobs) < 1:
            raise UserError(f"--jobs must be at least 1, got {jobs}")
        if threads is not None and int(threads) < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        self.jobs = int(jobs)
        self.threads = int(threads) if threads is not None else max(1, (os.cpu_count() or 1) // self.jobs)

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), "threads": self.threads}

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        if self.jobs == 1 or len(tasks) <= 1:
            yield from self._run_sequential(fn, tasks)
        else:
            yield from self._run_pool(fn, tasks)

    def _run_sequential(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        import torch

        previous = torch.get_num_threads()
        try:
            for index, task in enumerate(tasks):
                torch.set_num_threads(self.threads)
                try:
                    result: Any = fn(task)
                except Exception as exc:  # a failing task is an outcome, not the end of the sweep
                    result = exc
                yield index, result
        finally:
            torch.set_num_threads(previous)

    def _run_pool(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads, os.getpid()))
        pending: Dict[Future, int] = {}
        try:
            pending = {pool.submit(fn, task): index for index, task in enumerate(tasks)}
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        result: Any = future.result()
                    except Exception as exc:  # includes BrokenProcessPool when a worker dies
                        result = exc
                    yield index, result
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def make_executor(name: str = "local", jobs: Optional[int] = None, threads: Optional[int] = None,
                  **options: Any) -> Executor:
    """Create a registered executor by name (unknown names raise a ``UserError`` listing the valid ones).

    ``options`` are executor-specific settings (``address``, ``gpus_per_run``, ``copy_back`` of ``ray``); one
    that is set (not ``None``) for an executor that does not take it is a ``UserError``.

    Example:
        >>> make_executor("local", jobs=2, threads=1, address=None).jobs
        2
    """
    factory = EXECUTORS.get(name)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(key for key, value in options.items() if value is not None and key not in accepted)
    if unknown:
        flags = ", ".join("--" + key.replace("_", "-") for key in unknown)
        raise UserError(f"{flags}: not an option of --executor {name} (valid with: "
                        f"{', '.join(n for n in EXECUTORS.names() if set(unknown) <= set(_params(n)))})")
    return factory(jobs=jobs, threads=threads, **{k: v for k, v in options.items() if k in accepted})


def _params(name: str) -> Sequence[str]:
    return list(inspect.signature(EXECUTORS.get(name)).parameters)
