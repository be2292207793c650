"""``train(config) -> RunResult``: build everything from a config, train, evaluate, write the run directory.

Used by ``collapse-lab train`` and by notebooks (``collapse_lab.train(...)``)::

    >>> result = train(["dataset=data/synthetic", "method=kdef", "n=4"])   # doctest: +SKIP
    >>> result.summary["ensemble_auc"], result.run_dir                    # doctest: +SKIP

Order of work: resolve and validate the config, the device and the dataset, build the model and the task —
all before anything is written, so bad input leaves no directory behind — then create (or reopen) the run
directory, train (:class:`~collapse_lab.training.trainer.Trainer`), restore the best weights, score valid and
test, save the probe activations and mark the manifest ``complete``. Errors mark it ``failed``.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Sequence, Union

from collapse_lab.config import UNHASHED_KEYS, ConfigLike, TrainConfig, config_hash, config_to_dict, config_to_yaml
from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_write_text
from collapse_lab.io.checkpoint import load_trainer_state, load_weights, recover_checkpoint_pair, save_weights
from collapse_lab.io.lock import lock_run
from collapse_lab.io.manifest import Manifest, read_manifest
from collapse_lab.io.rundir import (
    MetricsLog,
    RunDir,
    recover_run_dir,
    remove_temporaries,
    run_logger,
    staging_dir,
    swap_in,
)
from collapse_lab.resolve import resolve_config
from collapse_lab.tracking import TrackingSession

__all__ = ["train", "RunResult", "default_run_dir", "resolve_device"]

DEFAULT_RUNS_ROOT = Path("runs")


@dataclass
class RunResult:
    """What a finished run produced; everything is also in ``run_dir/manifest.json``."""

    run_dir: Path
    config: TrainConfig
    manifest: Dict[str, Any]

    @property
    def results(self) -> Dict[str, Any]:
        return self.manifest.get("results") or {}

    @property
    def summary(self) -> Dict[str, Any]:
        """Test-split summary: ensemble AUC/logloss, best/worst student, spread, gap, λ/μ statistics."""
        return self.results.get("summary") or {}

    @property
    def test(self) -> Dict[str, Dict[str, float]]:
        return self.results.get("test") or {}

    @property
    def valid(self) -> Dict[str, Dict[str, float]]:
        return self.results.get("valid") or {}

    @classmethod
    def from_run_dir(cls, run_dir: Union[str, Path]) -> RunResult:
        manifest = read_manifest(Path(run_dir) / "manifest.json")
        return cls(Path(run_dir), TrainConfig(**manifest["config"]), manifest)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready view (what ``collapse-lab train --json`` prints)."""
        return {"run_dir": str(self.run_dir), "status": self.manifest.get("status"),
                "best_epoch": self.results.get("best_epoch"), "epochs_run": self.results.get("epochs_run"),
                "test": self.test, "valid": self.valid, "summary": self.summary}


def default_run_dir(cfg: TrainConfig, root: Union[str, Path] = DEFAULT_RUNS_ROOT) -> Path:
    """``runs/<dataset>-<method>-<fusion>-n<N>-s<seed>`` (dataset = last path component).

    Example:
        >>> default_run_dir(TrainConfig(dataset="data/ml", method="kd", n=2, seed=1)).as_posix()
        'runs/ml-kd-mean-n2-s1'
    """
    name = Path(cfg.dataset).name or "dataset"
    return Path(root) / f"{name}-{cfg.method}-{cfg.fusion}-n{cfg.n}-s{cfg.seed}"


def resolve_device(device: str | None) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an unavailable or unknown device is a UserError."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}; valid: auto, cpu, cuda") from None
    if parsed.type not in ("cpu", "cuda"):
        raise UserError(f"unknown device {device!r}; valid: auto, cpu, cuda")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device!r} requested but no CUDA device is available; use --device cpu")
    return str(parsed)


def _resume_config(run: Path, config: ConfigLike, config_file: Union[str, Path] | None) -> TrainConfig:
    """The stored config of ``run``; any key given now must agree with it, except the :data:`UNHASHED_KEYS`.

    Those (``tracker``) say where results are reported, not what is trained: they are not part of the config
    hash, of sweep run names or of the trainer state's identity, so a change to them must not turn a resume into
    a restart (a sweep resumes an interrupted run with the config it has now). The values given now win; the
    trackers of a resumed run are reconciled in :func:`_train_in`.
    """
    stored = TrainConfig(**read_manifest(run / "manifest.json")["config"])
    given = resolve_config(config, config_file, base=stored)
    old, new = config_to_dict(stored), config_to_dict(given)
    changed = [k for k, v in new.items() if k not in UNHASHED_KEYS and old[k] != v]
    if changed:
        raise UserError(f"{run}: cannot resume with a different config (changed: {', '.join(changed)}); "
                        "use --overwrite to start over")
    return dataclasses.replace(stored, **{k: getattr(given, k) for k in UNHASHED_KEYS})


def train(config: ConfigLike = None, out_dir: Union[str, Path] | None = None, resume: bool = False,
          overwrite: bool = False, device: str | None = "auto", progress: bool | None = None,
          config_file: Union[str, Path] | None = None, console: bool = True,
          callbacks: Sequence[Callable[[str, Dict[str, Any]], None]] = (), parallel: str = "none") -> RunResult:
    """Train an ensemble and write its run directory.

    Args:
        config: a :class:`TrainConfig`, a dict of config keys or a list of ``key=value`` overrides.
        out_dir: the run directory (default :func:`default_run_dir`).
        resume: continue the run in ``out_dir`` after its last finished epoch (from the start if it was killed
            during its first epoch).
        overwrite: replace an existing ``out_dir`` — only a collapse-lab run (manifest ``kind``), and only once the
            new run is complete (it is built in a hidden sibling and swapped in).
        device: ``auto`` | ``cpu`` | ``cuda`` (``cuda:1``...).
        progress: tqdm progress bar (None = only on a terminal).
        config_file: a YAML file of config keys, merged before ``config``.
        console: also log to stderr (the log always goes to ``train.log``).
        callbacks: ``fn(event, info)`` called after each evaluation and each epoch.
        parallel: ``none`` | ``data`` | ``ensemble``: one process, or this process's share of a ``torchrun``
            launch (the batch or the students split over the processes, docs/architecture.md §11); the run
            equals single-process training, and only rank 0 writes ``out_dir``.

    Returns:
        :class:`RunResult` of the finished run.

    Raises:
        UserError: bad config, unprepared dataset, existing output directory, another live process training
            ``out_dir`` (its lock, io/lock.py), non-finite loss...
    """
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    cfg = resolve_config(config, config_file)
    out = Path(out_dir) if out_dir is not None else default_run_dir(cfg)
    if parallel == "none":
        cfg, complete = _check_out(cfg, out, resume, overwrite, config, config_file)
        if complete:
            return RunResult.from_run_dir(out)
        return _train_with_threads(cfg, out, resume, overwrite, resolve_device(device), progress, console,
                                   callbacks, None)
    from collapse_lab.parallel import start

    group = start(parallel, resolve_device(device))
    try:  # rank 0 checks `out` and every rank gets its verdict; ranks > 0 write a private copy of the run
        cfg, complete = group.from_rank0(lambda: _check_out(cfg, out, resume, overwrite, config, config_file))
        if complete:
            return RunResult.from_run_dir(out)
        group.check(cfg.n, cfg.batch_size, cfg.students or [cfg.student])
        if group.rank > 0:
            out, resume, overwrite, progress, console = group.private_dir(), False, False, False, False
        return _train_with_threads(cfg, out, resume, overwrite, group.device, progress, console, callbacks, group)
    finally:
        group.close()


def _check_out(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, config: ConfigLike,
               config_file: Union[str, Path] | None) -> tuple:
    """(the config to train, whether ``out`` is a complete run to return) before the model is built."""
    if resume:
        if not (out / "manifest.json").exists():
            raise UserError(f"{out}: no run to resume (no manifest.json)")
        cfg = _resume_config(out, config, config_file)
        return cfg, read_manifest(out / "manifest.json").get("status") == "complete"
    if _occupied(out):
        RunDir.prepare(out, overwrite=overwrite, check_only=True)  # fail fast, before the model is built
    return cfg, False


def _train_with_threads(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, dev: str,
                        progress: bool | None, console: bool, callbacks: Sequence[Any], group: Any) -> RunResult:
    """:func:`_run` under the config's torch thread count, restoring the process-global CPU settings."""
    import torch

    old_threads = torch.get_num_threads()
    # flush-denormal is process-global CPU state (FTZ/DAZ): restore it so notebooks and other code see IEEE floats
    old_flush = torch.tensor([1e-40], dtype=torch.float32).item() == 0.0
    try:
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        return _run(cfg, out, resume, overwrite, dev, progress, console, callbacks, group)
    finally:
        torch.set_num_threads(old_threads)
        torch.set_flush_denormal(old_flush)


def _occupied(out: Path) -> bool:
    """Whether ``out`` exists as a file or a non-empty directory."""
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


def _build(cfg: TrainConfig, dev: str) -> Dict[str, Any]:
    """Dataset, iterators, model and task (validates everything before the run directory is touched)."""
    import torch

    from collapse_lab.data.catalog import resolve_processed
    from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
    from collapse_lab.models import build_ensemble, member_names, resolve_form
    from collapse_lab.models.capacity import match_capacity
    from collapse_lab.strategies import build_strategy
    from collapse_lab.training.compiling import compile_students
    from collapse_lab.training.memory import check_training_memory
    from collapse_lab.training.precision import install_precision, resolve_precision
    from collapse_lab.utils.seed import seed_everything

    path = resolve_processed(cfg.dataset, cfg.data_root).resolve()
    data = ProcessedDataset(path)
    check_training_memory(data.feature_map, cfg, dev)  # before any parameter is allocated
    splits = {name: data.split(name) for name in ("train", "valid", "test")}
    for name, split in splits.items():
        if len(split) == 0:
            raise UserError(f"{path}: split {name!r} is empty")
    if dev == "cpu":
        torch.set_flush_denormal(True)  # Adam moments of rare embedding rows decay into slow denormals
    seed_everything(cfg.seed, cfg.deterministic)
    form = resolve_form(cfg.form, dev, member_names(cfg.n, cfg.student, cfg.students))
    shape = dict(student=cfg.student, embedding_dim=cfg.embedding_dim, net_dropout=cfg.net_dropout,
                 batch_norm=cfg.batch_norm, fusion=cfg.fusion, embedding_init_std=cfg.embedding_init_std,
                 students=cfg.students, student_args=cfg.student_args)
    hidden, capacity = tuple(cfg.hidden_units), None
    if cfg.width_match_n is not None:  # capacity control: one student with the parameters of K students
        capacity = match_capacity(data.feature_map, cfg.width_match_n, hidden, **shape)
        hidden = tuple(capacity["hidden_units"])
    model = build_ensemble(data.feature_map, num_students=cfg.n, hidden_units=hidden, form=form, seed=cfg.seed,
                           **shape).to(dev)
    precision, precision_note = resolve_precision(cfg.precision, dev)  # bf16 -> fp32 without bf16 units
    install_precision(model, precision, dev)  # students under autocast in training, evaluation and the probe
    compile_note = compile_students(model, dev) if cfg.compile else None  # eager + one line where unavailable
    task = build_strategy(cfg.method, num_students=cfg.n, cons=cfg.cons, kd_weight=cfg.kd_weight,
                          mutual_weight=cfg.mutual_weight, exam=cfg.exam, detach_exam=cfg.detach_exam,
                          exam_weights=cfg.exam_weights, kdef_terms=cfg.kdef_terms)
    if isinstance(task, torch.nn.Module):
        task = task.to(dev)
    # a last batch of one row would break BatchNorm in train mode; FuxiCTR keeps partial batches otherwise
    drop_last = len(splits["train"]) % cfg.batch_size == 1
    device = None if dev == "cpu" else dev
    prefetch = 0 if dev == "cpu" else 2  # on a GPU, gather + host-to-device copies overlap the step
    resident = cfg.data_on_device and dev != "cpu"  # on a GPU: the splits copied once, batches sliced there
    return {"path": path, "data": data, "splits": splits, "model": model, "task": task, "form": form,
            "capacity": capacity, "precision": precision, "precision_note": precision_note,
            "compiled": cfg.compile and compile_note is None, "compile_note": compile_note,
            "train": BatchIterator(splits["train"], cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=drop_last,
                                   device=device, prefetch=prefetch, resident=resident),
            "valid": BatchIterator(splits["valid"], cfg.batch_size, device=device, resident=resident),
            "test": BatchIterator(splits["test"], cfg.batch_size, device=device)}


def _run(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, dev: str, progress: bool | None,
         console: bool, callbacks: Sequence[Any], group: Any = None) -> RunResult:
    """Validate and build, then train under the run directory's lock (io/lock.py) and write the run.

    Under the lock the state of ``out`` is read again (another process may have finished or replaced it), the
    leftovers of a killed process are cleaned up, and the run is written in one of three ways:

    * resume: in place, from the last complete ``checkpoints/last`` pair, or from scratch if the run was killed
      before its first epoch ended (nothing to resume from is not an error);
    * new: the directory appears with its manifest already in it (built as a temporary sibling and renamed);
    * overwrite: the new run is built in a staging sibling and swapped in only when complete, so a failing or
      killed new run leaves the old one as it was.
    """
    built = _build(cfg, dev)
    with lock_run(out):
        recover_run_dir(out)
        if resume and read_manifest(out / "manifest.json").get("status") == "complete":
            return RunResult.from_run_dir(out)  # finished by another process while this one was building
        replacing = not resume and _occupied(out)
        if replacing:
            RunDir.prepare(out, overwrite=overwrite, check_only=True)  # refuses anything but an old run
        work = staging_dir(out) if replacing else out
        try:
            manifest = _open_run(cfg, out, work, resume, dev, built)
            result = _train_in(cfg, RunDir(work), out, resume, manifest, dev, built, progress, console, callbacks,
                               group)
        except BaseException:
            if replacing:
                shutil.rmtree(work, ignore_errors=True)  # the old run stays as it was
            raise
        if replacing:
            swap_in(work, out)
        return RunResult(out, cfg, result)


def _open_run(cfg: TrainConfig, out: Path, work: Path, resume: bool, dev: str, built: Dict[str, Any]) -> Manifest:
    """The manifest of the run being written in ``work`` (created, or reopened for a resume)."""
    from collapse_lab.utils.seed import derive_seeds

    run = RunDir(work)
    if resume:
        remove_temporaries(run.path)
        if not run.config_yaml.exists():
            atomic_write_text(run.config_yaml, config_to_yaml(cfg))
        manifest = Manifest.load(run.manifest_json)
        stored = (manifest["dataset"] or {}).get("hash")
        if stored and stored != built["data"].content_hash:  # e.g. prepared again with another pooling
            raise UserError(f"{out}: cannot resume: dataset {built['data'].dataset_id!r} changed since the run "
                            f"started (content hash {stored} -> {built['data'].content_hash}); use --overwrite "
                            "to start over")
        return manifest
    data = built["data"]
    fields = dict(device=dev, form=built["form"], config=config_to_dict(cfg), config_hash=config_hash(cfg),
                  seeds={"run": cfg.seed, "students": derive_seeds(cfg.seed, cfg.n)},
                  dataset={"id": data.dataset_id, "path": str(built["path"]), "hash": data.content_hash,
                           "rows": {name: len(split) for name, split in built["splits"].items()}},
                  model={**built["model"].describe(), "precision": built["precision"],
                         **({"compiled": built["compiled"]} if cfg.compile else {}),
                         **({"capacity": built["capacity"]} if built["capacity"] else {})})
    # a new run appears with its manifest in it (built in a staging sibling, which recover_run_dir removes after a
    # kill); an overwrite's ``work`` is already such a sibling
    skeleton = staging_dir(out) if work == out else work
    manifest = Manifest.create(skeleton / "manifest.json", **fields)
    manifest.save()
    atomic_write_text(skeleton / "config.yaml", config_to_yaml(cfg))
    if skeleton != work:
        swap_in(skeleton, out)  # replaces at most an empty directory here
        manifest.path = run.manifest_json
    return manifest


def _train_in(cfg: TrainConfig, run: RunDir, out: Path, resume: bool, manifest: Manifest, dev: str,
              built: Dict[str, Any], progress: bool | None, console: bool, callbacks: Sequence[Any],
              group: Any = None) -> Dict[str, Any]:
    """Train (or continue) the run in ``run``, finish it, and return its manifest."""
    from collapse_lab.training.trainer import Trainer, training_step

    state = None
    if resume:
        if recover_checkpoint_pair(run.checkpoint("last").parent):
            state = load_trainer_state(run.trainer_state)
        elif run.legacy_trainer_state.exists():  # runs written before the pair directory
            state = load_trainer_state(run.legacy_trainer_state)
        else:  # killed before the first epoch ended: nothing to resume from, start over in place
            shutil.rmtree(run.checkpoints, ignore_errors=True)
            manifest.update(checkpoints=[], probe=None, results=None, timing={"train_samples_per_s": []})
    tracker_note, added = None, []
    if resume:  # the trackers may differ from the last attempt's (not part of the config hash): record the new ones
        before = list((manifest["config"] or {}).get("tracker") or ["csv"])
        if before != list(cfg.tracker):
            added = [n for n in cfg.tracker if n not in before]
            tracker_note = (f"tracker changed since the last attempt: {before} -> {list(cfg.tracker)}"
                            + (f" ({', '.join(added)} sent every row from the start)" if added else ""))
            manifest.update(config={**manifest["config"], "tracker": list(cfg.tracker)})  # saved below
    # the trackers get every row the trainer adds (a callback, first so an interrupting callback cannot skip it)
    # (rank 0 only under torchrun: the other ranks write a private copy of the run)
    tracking = TrackingSession(cfg.tracker if group is None or group.rank == 0 else ["csv"], run.path,
                               config_to_dict(cfg), None if not resume else int(state["step"]) if state is not None
                               else 0, added=added)
    if tracker_note:  # only once the new backends opened: a backend that fails leaves the run's files as they were
        atomic_write_text(run.config_yaml, config_to_yaml(cfg))
    manifest.set_status("running")
    manifest.save()
    metrics = MetricsLog(run.metrics_csv)
    with run_logger(run.train_log, console=console) as log:
        trainer = Trainer(cfg, built["model"], built["task"], built["train"], built["valid"], run, metrics, manifest,
                          log, dev, progress=progress, callbacks=[tracking, *callbacks],
                          step_fn=training_step if group is None else group.step_fn(cfg.n))
        try:
            if state is not None:
                trainer.load_state_dict(state)
                log.info("resuming %s after epoch %d (step %d)", out, trainer.epoch, trainer.step)
            else:
                log.info("training %s%s", out, " (no finished epoch to resume from; from the start)" if resume
                         else "")
                log.info("config %s", config_to_dict(cfg), extra={"file_only": True})
            if tracker_note:
                log.info("%s", tracker_note)
            for note in ("precision_note", "compile_note"):
                if built.get(note):
                    log.warning("%s", built[note])
            if group is not None:
                log.info("parallel %s: rank %d of %d processes on %s", group.strategy, group.rank, group.world_size,
                         dev)
                group.sync_trainer(trainer)  # a resume loaded rank 0's state only
            trainer.fit()
            # a run resumed after its last epoch trains nothing, so no callback re-sends the rows that the
            # trackers dropped from the resume step on: send whatever they have not seen
            tracking.sync(trainer.metrics.rows, trainer.trace.rows if trainer.trace is not None else [])
            _finish(cfg, trainer, built, run, manifest, metrics, log, tracking)
        except UserError as exc:
            log.error("failed: %s", exc, extra={"file_only": True})  # the CLI prints it as its error line
            manifest.set_status("failed", str(exc))
            manifest.save()
            tracking.close("failed")
            raise
        except BaseException as exc:
            reason = f"stopped after epoch {trainer.epoch} (step {trainer.step}) by {type(exc).__name__}: {exc}"
            log.error("%s; rerun with --resume to continue from there", reason, extra={"file_only": True})
            manifest.set_status("failed", reason)
            manifest.save()
            tracking.close("stopped")
            raise
    tracking.close("complete")
    remove_temporaries(run.path)  # leftovers of earlier killed attempts (this process holds the lock)
    return manifest.data


def _finish(cfg: TrainConfig, trainer: Any, built: Dict[str, Any], run: RunDir, manifest: Manifest,
            metrics: MetricsLog, log: Any, tracking: TrackingSession) -> None:
    """Restore the best weights, score valid and test (also to the trackers), save the probe, complete the
    manifest."""
    from collapse_lab.training.delong import student_auc_diff_se
    from collapse_lab.training.evaluation import evaluate, predict, score_members, summarize
    from collapse_lab.training.probe import collect_probe, probe_entry, probe_indices

    model = trainer.model
    weights, _ = load_weights(run.checkpoint("best"))
    model.import_state_dict(weights)
    best_epoch, best_step = trainer.monitor.best_epoch, trainer.monitor.best_step
    valid = evaluate(model, built["valid"], split="valid")
    labels, logits, fused = predict(model, built["test"])  # kept for the test split's noise figure
    test = score_members(labels, logits, fused, split="test")
    first_final = len(metrics)
    for split, values in (("valid", valid), ("test", test)):
        for member, scores in values.items():
            for metric, value in scores.items():
                metrics.add(best_epoch, best_step, split, member, metric, value)
    metrics.flush()
    tracking.final(metrics.rows[first_final:], trainer.step)
    summary = summarize(test, trainer.transfer, student_auc_diff_se(labels, logits))
    probe = None
    if cfg.probe_rows > 0:
        split = built["splits"]["valid"]
        indices = probe_indices(len(split), cfg.probe_rows, cfg.seed)
        tensors = collect_probe(model, split, indices, cfg.batch_size, None if trainer.device.type == "cpu"
                                else trainer.device)
        sha = save_weights(run.probe, tensors, {"split": "valid", "rows": len(indices), "seed": cfg.seed})
        probe = probe_entry(run.relative(run.probe), "valid", tensors, sha)
    manifest.update(probe=probe, results={"best_epoch": best_epoch, "best_step": best_step,
                                          "epochs_run": trainer.epoch, "steps_run": trainer.step,
                                          "valid": valid, "test": test, "summary": summary})
    manifest.set_status("complete")
    manifest.save()
    log.info("done: best epoch %d; test ensemble AUC %.5f logloss %.5f; best student %d AUC %.5f; spread %.5f; "
             "gap %.5f", best_epoch, summary["ensemble_auc"], summary["ensemble_logloss"], summary["best_student"],
             summary["best_student_auc"], summary["spread"], summary["gap"])

