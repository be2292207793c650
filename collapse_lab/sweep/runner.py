"""Resumable sweeps: expand a grid, skip finished runs, run the rest through an executor, record every outcome.

Layout of a sweep directory::

    <sweep_dir>/sweep.json          # id, spec, executor, and per run: config, status, error, seconds, attempts
    <sweep_dir>/runs/<run name>/    # one run directory per point (README "Run directory")

A run whose ``manifest.json`` says ``"status": "complete"`` is skipped, unless it is ``stale``: its manifest
records another dataset content hash (``dataset.hash``) than the dataset prepared now for its config
(:mod:`collapse_lab.sweep.staleness`). A stale run is trained again like a failed one. A complete run whose
manifest records no dataset hash cannot be checked and is kept as complete; the report lists it (``unverified``)
so a dry run says so. Every run is trained while holding its
directory's lock (:mod:`collapse_lab.io.lock`; the kernel drops it when the holder dies): a run whose lock another
live process holds is left to it and waited for after the free runs; a run in state ``running`` whose lock is
free was interrupted and is resumed (``train(..., resume=True)``, from scratch if that cannot work); a failed or
stale run is trained again (``overwrite=True``, which replaces it only once the new one is complete). A run that
raises is recorded in ``sweep.json`` with its error and the sweep goes on. When resuming fails and the run is trained
again from scratch, the resume error is kept too (``resume_error``/``resume_traceback`` in ``sweep.json``, the
report and the log line of the run), whatever the second attempt does: it is often the first sign of a broken
checkpoint or a config that drifted, and the second error alone would hide it.

``sweep.json`` is rewritten atomically after every finished run, under the sweep's lock ``.sweep.lock``, merged
with what other processes recorded meanwhile: two sweeps started together on one directory each train the runs
the other has not taken, wait for the others, and leave one consistent record. An interrupted sweep is resumed
by running the same command again.
"""

from __future__ import annotations

import dataclasses
import importlib
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.io.contract import run_dataset_hash, run_status
from collapse_lab.io.lock import DirLock, LockBusy, run_lock_path
from collapse_lab.io.paths import child
from collapse_lab.sweep.executor import Executor, make_executor
from collapse_lab.sweep.grid import SweepPoint, SweepSpec, expand_grid, load_grid, parse_grid_overrides
from collapse_lab.sweep.record import SWEEP_SCHEMA_VERSION, SweepRecord, now, sweep_id
from collapse_lab.sweep.runlog import _RunLog
from collapse_lab.sweep.staleness import (
    STALE,
    classify_run,
    dataset_hashes,
    dataset_key,
    mismatch_text,
    sweep_run_status,
    trained_mismatch,
)

__all__ = [
    "RunTask",
    "RunOutcome",
    "SweepReport",
    "DEFAULT_TRAINER",
    "SWEEP_SCHEMA_VERSION",
    "execute_run",
    "check_datasets",
    "run_status",
    "STALE",
    "dataset_hashes",
    "sweep_run_status",
    "sweep_runs_dir",
    "sweep_id",
    "plan_sweep",
    "run_sweep",
]

DEFAULT_TRAINER = "collapse_lab.training.api:train"


@dataclass
class RunTask:
    """What a worker needs to train one run (picklable; sent to worker processes)."""

    name: str
    config: Dict[str, Any]
    run_dir: str
    trainer: str = DEFAULT_TRAINER
    device: str = "auto"
    wait: bool = False  # wait for a run another process holds (else report it as busy at once)
    #: content hash of the dataset prepared for this run when the sweep was planned (None: no check); a complete
    #: run whose manifest records another one is stale and trained again
    dataset_hash: Optional[str] = None
    keep_stale: bool = False  # a run found stale under the lock counts as complete (--keep-stale)


@dataclass
class RunOutcome:
    """The result of one training attempt."""

    name: str
    status: str  # complete | failed | busy (another live process holds the run)
    seconds: float
    error: Optional[str] = None
    traceback: Optional[str] = None
    trained: bool = True  # False: found complete (finished by another process) once its lock was taken
    #: why resuming an interrupted run failed before it was trained again from scratch (None: no fallback)
    resume_error: Optional[str] = None
    resume_traceback: Optional[str] = None
    #: the run records another dataset hash than planned (:func:`~collapse_lab.sweep.staleness.trained_mismatch`)
    dataset_mismatch: Optional[Dict[str, str]] = None


@dataclass
class SweepReport:
    """What a call to :func:`run_sweep` did."""

    sweep_dir: Path
    sweep_id: str
    runs: List[str]
    skipped: List[str] = field(default_factory=list)
    completed: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)
    resume_errors: Dict[str, str] = field(default_factory=dict)  # run -> why resuming failed (then from scratch)
    seconds: float = 0.0
    statuses: Dict[str, str] = field(default_factory=dict)  # status of every run before this call
    #: complete runs whose manifest records no dataset hash (nothing to compare with the dataset now): kept
    unverified: List[str] = field(default_factory=list)
    #: one-line notes on the grid (an exclude rule that matches no point), printed as ``warning:`` lines
    warnings: List[str] = field(default_factory=list)
    kept_stale: List[str] = field(default_factory=list)  # stale runs kept as complete (--keep-stale, or a mismatch)
    dataset_mismatches: Dict[str, str] = field(default_factory=dict)  # run -> trained_mismatch, in words

    def to_json(self, dry_run: bool = False) -> Dict[str, Any]:
        """A JSON-able dict for ``collapse-lab sweep --json``: every run with its status before this call
        (``complete``, ``stale``, ``missing``, ``failed``...; ``dataset_unverified`` on a complete run that records
        no dataset hash) and, unless ``dry_run``, what this call did to it (``trained``, ``skipped``, ``failed``
        with the error)."""
        from collections import Counter

        runs = []
        for name in self.runs:
            entry: Dict[str, Any] = {"name": name, "status": self.statuses.get(name)}
            if name in self.unverified:
                entry["dataset_unverified"] = True
            if name in self.kept_stale:
                entry["kept_stale"] = True
            if name in self.dataset_mismatches:
                entry["dataset_mismatch"] = self.dataset_mismatches[name]
            if not dry_run:
                entry["outcome"] = ("failed" if name in self.failed else "trained" if name in self.completed
                                    else "skipped" if name in self.skipped else None)
                if name in self.failed:
                    entry["error"] = self.failed[name]
                if name in self.resume_errors:
                    entry["resume_error"] = self.resume_errors[name]
            runs.append(entry)
        counts = Counter(self.statuses.get(n) for n in self.runs)
        out: Dict[str, Any] = {"sweep_id": self.sweep_id, "sweep_dir": str(self.sweep_dir), "dry_run": dry_run,
                               "warnings": list(self.warnings), "runs": runs,
                               "statuses": dict(sorted(counts.items(), key=lambda kv: str(kv[0]))),
                               "to_train": sum(self.statuses.get(n) != "complete" and n not in self.kept_stale
                                               for n in self.runs)}
        if not dry_run:
            out.update(trained=len(self.completed), skipped=len(self.skipped), failed=len(self.failed),
                       seconds=round(self.seconds, 3))
        return out

    def summary_line(self) -> str:
        """One line for the terminal; it names the runs trained again because their dataset was prepared again."""
        stale = sum(self.statuses.get(name) == STALE for name in self.completed)
        trained = f"{len(self.completed)} trained" + (f" ({stale} stale: trained again on the dataset prepared now)"
                                                      if stale else "")
        kept = f" ({len(self.kept_stale)} stale kept)" if self.kept_stale else ""
        return (f"sweep {self.sweep_id}: {len(self.runs)} runs, {trained}, "
                f"{len(self.skipped)} already complete{kept}, {len(self.failed)} failed ({self.seconds:.1f} s) "
                f"-> {self.sweep_dir}")


def _import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def execute_run(task: RunTask) -> RunOutcome:
    """Train one run with ``task.trainer`` (``module:function`` with the signature of ``train``).

    Holds the run's lock throughout; a run another live process holds comes back ``busy`` (or is waited for with
    ``task.wait``), one found complete once the lock is taken comes back with ``trained=False``. Never raises for
    a failing run: the error and its traceback come back in the :class:`RunOutcome`. An interrupted run that
    cannot be resumed is trained again from scratch; the resume error then comes back as ``resume_error`` (and
    is named in ``error`` as well if the second attempt fails too), so neither error is lost.
    """
    start = time.perf_counter()
    runs_dir = Path(task.run_dir).parent
    if not runs_dir.is_dir():  # a remote worker without the driver's filesystem: never train into a local copy
        return RunOutcome(task.name, "failed", 0.0, f"{runs_dir} is not visible on host {socket.gethostname()} "
                          "(the workers do not share the sweep's filesystem: use --copy-back)")
    try:
        lock = DirLock(run_lock_path(task.run_dir), f"run directory {task.run_dir}").acquire(wait=task.wait)
    except LockBusy as exc:
        return RunOutcome(task.name, "busy", time.perf_counter() - start, str(exc))
    resume_error: Optional[str] = None
    resume_tb: Optional[str] = None
    try:
        status = sweep_run_status(task.run_dir, task.dataset_hash)  # a stale run is trained again (overwrite)
        if status == "complete" or (status == STALE and task.keep_stale):  # finished by another sweep meanwhile
            return RunOutcome(task.name, "complete", time.perf_counter() - start, trained=False)
        trainer = _import_target(task.trainer)
        kwargs = dict(out_dir=task.run_dir, device=task.device, progress=False, console=False)
        resumed = False
        if status == "running":  # interrupted (its lock was free): continue it from its last finished epoch
            try:
                trainer(dict(task.config), resume=True, **kwargs)
                resumed = True
            except Exception as exc:  # noqa: BLE001 - any reason it cannot continue: train it again from scratch
                resume_error, resume_tb = _error_text(exc)
        if not resumed:
            trainer(dict(task.config), overwrite=True, **kwargs)
        status = run_status(task.run_dir)
        if status != "complete":
            raise RuntimeError(f"training returned but {task.run_dir}/manifest.json has status {status!r}")
    except Exception as exc:  # recorded in sweep.json; the sweep goes on
        error, tb = _error_text(exc)
        if resume_error is not None:
            error = f"{error} (when trained again from scratch, after resuming had failed with {resume_error})"
        return RunOutcome(task.name, "failed", time.perf_counter() - start, error, tb,
                          resume_error=resume_error, resume_traceback=resume_tb)
    finally:
        lock.release()
    return RunOutcome(task.name, "complete", time.perf_counter() - start, resume_error=resume_error,
                      resume_traceback=resume_tb, dataset_mismatch=trained_mismatch(task.run_dir, task.dataset_hash))


def _error_text(exc: BaseException) -> Tuple[str, str]:
    """``("Type: message", traceback)`` of an exception, the traceback cut to its last 4000 characters."""
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))[-4000:]


def check_datasets(configs: Sequence[Mapping[str, Any]]) -> None:
    """Raise a UserError before anything runs when a dataset the runs need is not prepared (instead of every
    run failing with the same error)."""
    from collapse_lab.data.catalog import resolve_processed

    for dataset, root in dict.fromkeys((c.get("dataset"), c.get("data_root")) for c in configs):
        try:
            resolve_processed(dataset, root)
        except UserError as exc:
            raise UserError(f"{exc} (or run the whole job with `collapse-lab reproduce`, which prepares it)") from None


def sweep_runs_dir(sweep_dir: Union[str, Path]) -> Path:
    """Where the run directories of a sweep live (``<sweep_dir>/runs``)."""
    return Path(sweep_dir) / "runs"


def plan_sweep(grid: Union[str, Path, SweepSpec], out_dir: Optional[Union[str, Path]] = None,
               overrides: Union[Sequence[str], Mapping[str, List[Any]]] = (),
               warnings: Optional[List[str]] = None) -> tuple:
    """Parse and expand a grid: ``(spec, points, sweep_dir)`` (default ``sweeps/<name>``); nothing is written.
    Notes on the grid (an ``exclude`` rule that matches no point) are appended to ``warnings`` when given."""
    spec = grid if isinstance(grid, SweepSpec) else load_grid(grid)
    axes = parse_grid_overrides(list(overrides)) if not isinstance(overrides, Mapping) else dict(overrides)
    points = expand_grid(spec, axes, warnings=warnings)
    sweep_dir = Path(out_dir) if out_dir is not None else child("sweeps", spec.name, "sweep name", spec.source)
    return spec, points, sweep_dir


def _mismatch_known(record: SweepRecord, point: SweepPoint, runs_dir: Path, hashes: Mapping[Any, Any]) -> bool:
    """Whether a stale run is stale only by the mismatch its last training already recorded in ``sweep.json``
    (same planned and recorded hashes): training it again would record the same hash and never end."""
    known = record.state["runs"].get(point.name, {}).get("dataset_mismatch")
    return known == {"planned": hashes[dataset_key(point.config)], "recorded": run_dataset_hash(runs_dir / point.name)}


def _execute(executor: Executor, tasks: Sequence[RunTask]) -> Iterator[Tuple[int, Any]]:
    """``executor.run(execute_run, tasks)``, or its copy-back form when the executor's workers do not see the
    sweep directory (:mod:`collapse_lab.sweep.copy_back`)."""
    if not executor.copy_back:
        return executor.run(execute_run, tasks)
    from collapse_lab.sweep.copy_back import run_with_copy_back

    return run_with_copy_back(executor, tasks)


def run_sweep(grid: Union[str, Path, SweepSpec], out_dir: Optional[Union[str, Path]] = None,
              overrides: Union[Sequence[str], Mapping[str, List[Any]]] = (), jobs: Optional[int] = None,
              executor: Union[str, Executor] = "local", device: str = "auto", progress: Optional[bool] = None,
              trainer: str = DEFAULT_TRAINER, dry_run: bool = False, threads: Optional[int] = None,
              keep_stale: bool = False) -> SweepReport:
    """Run (or resume) a sweep.

    Args:
        grid: a grid YAML path or a :class:`SweepSpec`.
        out_dir: the sweep directory (default ``sweeps/<name>``).
        overrides: command-line axes (``["n=1,2", "seed=1,2,3"]``) replacing or adding axes of the grid.
        jobs: runs at the same time (default: 1 with ``local``; with ``ray`` as many as the cluster holds).
        executor: an executor name from :data:`~collapse_lab.sweep.executor.EXECUTORS` or an instance (e.g.
            ``RayExecutor(address="auto", gpus_per_run=0.25)``).
        device: passed to ``train`` (``auto``, ``cpu``, ``cuda``...; the executor may pin ``auto``, see
            :meth:`~collapse_lab.sweep.executor.Executor.task_device`).
        progress: tqdm over runs (``None``: only on a terminal; off a terminal, e.g. a background job writing to
            a log file, one line per finished run goes to stderr instead, with an ETA weighted by N).
        trainer: ``module:function`` with the signature of :func:`collapse_lab.training.api.train`.
        dry_run: only expand the grid and read the status of every run (``stale``: complete, but trained on
            another preparation of its dataset than the one prepared now); write and train nothing.
        threads: torch threads per run (default: cpu_count // jobs); a run's own ``num_threads`` key wins.
        keep_stale: count stale runs as complete (listed in ``kept_stale``) instead of training them again, e.g.
            to keep a finished sweep's numbers while a dataset is prepared again for a new one.

    Returns:
        A :class:`SweepReport`; failed runs are listed there and in ``sweep.json``, never raised.
    """
    from tqdm.auto import tqdm

    notes: List[str] = []
    spec, points, sweep_dir = plan_sweep(grid, out_dir, overrides, warnings=notes)
    if isinstance(executor, str):
        executor = make_executor(executor, jobs=jobs, threads=threads)
    start = time.perf_counter()
    runs_dir = sweep_runs_dir(sweep_dir)
    report = SweepReport(sweep_dir=sweep_dir, sweep_id=sweep_id(spec.name, [p.name for p in points]),
                         runs=[p.name for p in points], warnings=notes)
    hashes = dataset_hashes([p.config for p in points])  # one meta.json per dataset

    def status_of(point: SweepPoint) -> Tuple[str, bool]:
        return classify_run(runs_dir / point.name, hashes[dataset_key(point.config)])

    for point in points:
        status, unverified = status_of(point)
        report.statuses[point.name] = status
        if unverified:
            report.unverified.append(point.name)
        if status == STALE and keep_stale:
            report.kept_stale.append(point.name)
    if dry_run:
        return report
    if trainer == DEFAULT_TRAINER and any(s != "complete" and n not in report.kept_stale
                                          for n, s in report.statuses.items()):
        check_datasets([p.config for p in points if report.statuses[p.name] != "complete"
                        and p.name not in report.kept_stale])
    runs_dir.mkdir(parents=True, exist_ok=True)
    record = SweepRecord(sweep_dir, spec, executor)
    todo: List[SweepPoint] = []
    with record.lock:  # plan on the runs' state as of now: another sweep may be working on this directory
        report.kept_stale = []
        for point in points:
            status = report.statuses[point.name] = status_of(point)[0]
            if status == STALE and (keep_stale or _mismatch_known(record, point, runs_dir, hashes)):
                report.kept_stale.append(point.name)
            if status == "complete" or point.name in report.kept_stale:
                report.skipped.append(point.name)
                record.set_run(point.name, config=point.config, overrides=point.overrides, status="complete")
            else:
                todo.append(point)
                record.set_run(point.name, config=point.config, overrides=point.overrides, status="pending",
                               previous_status=status)
        record.save()
    if todo:  # a remote executor connects here and decides whether runs come back as archives
        executor.prepare(runs_dir)
        record.state["executor"] = executor.describe()
    device = executor.task_device(device)
    # absolute: a worker of a remote executor on a shared filesystem does not start in this directory
    tasks = [RunTask(p.name, p.config, str(runs_dir.absolute() / p.name), trainer, device,
                     dataset_hash=hashes[dataset_key(p.config)], keep_stale=keep_stale) for p in todo]
    bar = tqdm(total=len(tasks), desc=f"sweep {spec.name}", unit="run", disable=None if progress is None
               else not progress)
    log = _RunLog(tasks, enabled=progress is None and bool(bar.disable), jobs=getattr(executor, "jobs", 1))

    def record_outcome(index: int, outcome: Any) -> None:
        name = tasks[index].name
        if isinstance(outcome, BaseException):  # the worker itself died
            outcome = RunOutcome(name, "failed", 0.0, f"{type(outcome).__name__}: {outcome}")
        if outcome.status == "complete" and not outcome.trained:  # another process finished it
            report.skipped.append(name)  # an earlier attempt's errors no longer describe the run
            record.set_run(name, status="complete", error=None, traceback=None, resume_error=None,
                           resume_traceback=None)
        else:
            attempts = int(record.state["runs"][name].get("attempts", 0)) + 1
            record.set_run(name, status=outcome.status, error=outcome.error, traceback=outcome.traceback,
                           resume_error=outcome.resume_error, resume_traceback=outcome.resume_traceback,
                           dataset_mismatch=getattr(outcome, "dataset_mismatch", None),
                           seconds=round(outcome.seconds, 3), attempts=attempts, finished=now())
            if getattr(outcome, "dataset_mismatch", None):
                report.dataset_mismatches[name] = mismatch_text(outcome.dataset_mismatch)
            if outcome.resume_error:
                report.resume_errors[name] = outcome.resume_error
            if outcome.status == "complete":
                report.completed.append(name)
            else:
                report.failed[name] = outcome.error or "failed"
        record.save()
        bar.set_postfix_str(f"{name} {outcome.status}", refresh=False)
        bar.update(1)
        log.finished(index, outcome)

    try:
        busy = []  # runs another live process holds: waited for once every free run is done
        for index, outcome in _execute(executor, tasks):
            if isinstance(outcome, RunOutcome) and outcome.status == "busy":
                busy.append(index)
            else:
                record_outcome(index, outcome)
        waiting = [dataclasses.replace(tasks[i], wait=True) for i in busy]
        for k, outcome in _execute(executor, waiting):
            record_outcome(busy[k], outcome)
    finally:
        bar.close()
        record.save()
    report.sweep_id = record.id
    report.seconds = time.perf_counter() - start
    return report
