"""The run directory: fixed file names, creation rules, the tidy ``metrics.csv`` writer and the run log.

Layout (README "Run directory")::

    <run>/config.yaml                         resolved config
    <run>/manifest.json                       the index the analysis side reads (io/manifest.py)
    <run>/metrics.csv                         epoch,step,split,member,metric,value
    <run>/train.log                           the log (appended; the only file not replaced atomically)
    <run>/checkpoints/best/model.safetensors  best weights (early-stopping monitor)
    <run>/checkpoints/last/model.safetensors  weights after the last finished epoch (for --resume)
    <run>/checkpoints/last/trainer_state.pt   optimizer, schedule, counters, RNG states (written with the
                                              weights as one directory: io/checkpoint.save_checkpoint_pair)
    <run>/checkpoints/epoch_{k:04d}/model.safetensors   with save_every
    <run>/probe.safetensors                   hidden activations on the probe rows
    <run>/spectra_trace.csv                   collapse metrics over training (spectra_every; training/spectra.py)

An existing non-empty directory is refused unless the caller resumes it or overwrites it; only a directory
whose ``manifest.json`` has collapse-lab's run ``kind`` is ever replaced by an overwrite, and only once the new
run is complete: it is built in a staging sibling (:func:`staging_dir`) and swapped in (:func:`swap_in`).

A run directory may be a symbolic link (runs kept on another disk, linked into ``sweeps/<name>/runs/``). Staging,
swapping and recovery then act on the link's target (:func:`_real`): the staging sibling sits next to the target,
on its disk (a rename cannot cross disks, and a replacement built next to the link would quietly move the run off
the disk the user chose), the target is replaced and the link stays as it was. Whatever is removed is unlinked if
it is a link, never followed into its target. A dangling link is refused with a one-line error.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_write_text
from collapse_lab.io.contract import (
    CHECKPOINTS,
    CONFIG,
    LOG,
    MANIFEST,
    MANIFEST_KIND,
    METRICS,
    METRICS_COLUMNS,
    PROBE,
    SPECTRA_TRACE,
    TRAINER_STATE,
    WEIGHTS_FILE,
    read_manifest,
    read_rows,
)

__all__ = ["RunDir", "MetricsLog", "METRICS_COLUMNS", "run_logger", "is_run_dir", "staging_dir", "swap_in",
           "recover_run_dir", "remove_temporaries"]



class RunDir:
    """Paths of one run directory."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)

    config_yaml = property(lambda self: self.path / CONFIG)
    manifest_json = property(lambda self: self.path / MANIFEST)
    metrics_csv = property(lambda self: self.path / METRICS)
    train_log = property(lambda self: self.path / LOG)
    probe = property(lambda self: self.path / PROBE)
    spectra_trace = property(lambda self: self.path / SPECTRA_TRACE)
    trainer_state = property(lambda self: self.path / CHECKPOINTS / "last" / TRAINER_STATE)
    legacy_trainer_state = property(lambda self: self.path / TRAINER_STATE)  # before the pair directory
    checkpoints = property(lambda self: self.path / CHECKPOINTS)

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>/model.safetensors``."""
        return self.checkpoints / name / WEIGHTS_FILE

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, POSIX style (what the manifest records)."""
        return Path(path).relative_to(self.path).as_posix()

    @classmethod
    def prepare(cls, path: Union[str, Path], resume: bool = False, overwrite: bool = False,
                check_only: bool = False) -> RunDir:
        """Create (or reopen with ``resume``) a run directory; ``check_only`` validates without touching disk.

        With ``overwrite`` an existing directory is only checked, never deleted here: it must be a collapse-lab
        run (:func:`is_run_dir`); the caller builds the new run in :func:`staging_dir` and swaps it in with
        :func:`swap_in` once complete.

        Raises:
            UserError: the directory exists and is not empty (without ``resume``/``overwrite``), is not a run
                (with ``overwrite``), or ``resume`` was asked for a directory that holds no run.
        """
        run = cls(path)
        _real(run.path)  # refuses a dangling link before anything is built
        exists = run.path.exists() and any(run.path.iterdir()) if run.path.is_dir() else run.path.exists()
        if resume and overwrite:
            raise UserError("--resume and --overwrite exclude each other")
        if resume:
            if not run.manifest_json.exists():
                raise UserError(f"{run.path}: no run to resume (no manifest.json)")
            return run
        if exists:
            if not overwrite:
                raise UserError(f"{run.path}: output directory exists; pass --resume to continue it or "
                                "--overwrite to replace it")
            if not is_run_dir(run.path):  # never replace a directory that is not a run (e.g. --out .)
                raise UserError(f"{run.path}: exists and is not a collapse-lab run directory (no manifest.json of "
                                f"kind {MANIFEST_KIND!r}); refusing to overwrite it — choose another --out")
            return run  # the caller builds the new run in staging_dir() and swaps it in at the end
        if not check_only:
            run.path.mkdir(parents=True, exist_ok=True)
        return run


def is_run_dir(path: Union[str, Path]) -> bool:
    """Whether ``path`` is a directory whose ``manifest.json`` is a JSON object of collapse-lab's run ``kind``."""
    if not Path(path).is_dir() or not (Path(path) / MANIFEST).is_file():
        return False
    try:
        read_manifest(path, check_schema=False)
    except UserError:
        return False
    return True


_STAGING = ".staging-"


def _real(path: Union[str, Path]) -> Path:
    """The absolute directory that run ``path`` stands for: ``path`` itself, or the target of a symbolic link.

    Raises:
        UserError: ``path`` is a link whose target does not exist (an unmounted disk, a moved folder): building a
            run there would create folders at the target (or train into a stand-in), so the user fixes the link.
    """
    path = Path(path).absolute()
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if not target.is_dir():
        raise UserError(f"{path}: run directory is a symbolic link to {os.readlink(path)}, which is not an existing "
                        "directory; mount or create it, or remove the link")
    return target


def _remove(path: Path) -> None:
    """Delete ``path``: a link (or file) is unlinked, never followed; a directory is removed with its contents."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def staging_dir(path: Union[str, Path]) -> Path:
    """A new empty sibling ``.<name>.staging-XXXX.tmp`` to build a replacement of run ``path`` in (next to the
    link's target when ``path`` is a symbolic link, so that :func:`swap_in` renames within one disk)."""
    path = _real(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{_STAGING}", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o755)
    return tmp


def _old_dir(path: Path) -> Path:
    return path.parent / f".{path.name}.old"


def swap_in(staged: Union[str, Path], path: Union[str, Path]) -> None:
    """Replace run ``path`` by the complete run ``staged``: old -> ``.<name>.old``, staged -> path, delete old.

    At every instant ``path`` or ``.<name>.old`` is a complete run (:func:`recover_run_dir` restores the latter
    if a kill lands between the two renames). When ``path`` is a symbolic link its target is replaced (``staged``
    came from :func:`staging_dir`, next to it) and the link is kept.
    """
    path = _real(path)
    old = _old_dir(path)
    if old.exists() or old.is_symlink():
        _remove(old)
        if old.exists() or old.is_symlink():
            raise UserError(f"{old}: cannot remove the previous run left there; remove it by hand and rerun "
                            f"(the new run is complete in {staged})")
    if path.exists() or path.is_symlink():
        os.replace(path, old)
    os.replace(staged, path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _remove(old)


def recover_run_dir(path: Union[str, Path]) -> None:
    """After a kill, under the run's lock: delete stale staging siblings, restore an interrupted swap (next to the
    target when ``path`` is a symbolic link; a ``.<name>.old`` that is itself a link, as versions that moved the
    link aside left it, is restored or unlinked, never followed)."""
    path = Path(path).absolute()
    if path.is_symlink() and not path.exists():
        return  # dangling: nothing of ours to recover here; training refuses it with a one-line error
    path = _real(path)
    if not path.parent.is_dir():
        return
    for entry in path.parent.glob(f".{path.name}{_STAGING}*.tmp"):
        if entry.name[1:].rsplit(_STAGING, 1)[0] == path.name:  # not the staging of a run named "<name>.x"
            _remove(entry)
    old = _old_dir(path)
    if old.is_dir() or old.is_symlink():
        if not path.exists() and not path.is_symlink():
            os.replace(old, path)
        else:
            _remove(old)


def remove_temporaries(path: Union[str, Path]) -> List[Path]:
    """Delete the ``.*.tmp`` files and folders an earlier killed process left inside run ``path``.

    Only call it while holding the run's lock (a live writer's temporaries look the same). Returns what went.
    """
    gone = []
    for entry in sorted(Path(path).rglob(".*.tmp"), key=lambda p: len(p.parts)):
        if not entry.exists():
            continue  # inside a folder removed just before
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        gone.append(entry)
    return gone


def _format(value: float) -> str:
    return repr(float(value)) if not isinstance(value, (int, bool)) else str(int(value))


class MetricsLog:
    """Tidy metrics rows, flushed by rewriting ``metrics.csv`` atomically (an interruption never truncates it).

    Example:
        >>> import tempfile, pathlib
        >>> log = MetricsLog(pathlib.Path(tempfile.mkdtemp()) / "metrics.csv")
        >>> log.add(1, 10, "valid", "ensemble", "auc", 0.75)
        >>> log.flush()
        >>> log.path.read_text().splitlines()
        ['epoch,step,split,member,metric,value', '1,10,valid,ensemble,auc,0.75']
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self.rows: List[Tuple[int, int, str, str, str, float]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, epoch: int, step: int, split: str, member: Union[str, int], metric: str,
            value: float | None) -> None:
        """Append one row (``None`` and NaN values are skipped: absent, not zero)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        self.rows.append((int(epoch), int(step), split, str(member), metric, float(value)))

    def flush(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(METRICS_COLUMNS)
        for epoch, step, split, member, metric, value in self.rows:
            writer.writerow([epoch, step, split, member, metric, _format(value)])
        atomic_write_text(self.path, buf.getvalue())

    def load(self, keep: int | None = None) -> None:
        """Read the existing file, keeping its first ``keep`` rows (rows written after the last saved state)."""
        def parse(row: List[str]) -> Tuple[int, int, str, str, str, float]:
            epoch, step, split, member, metric, value = row
            return (int(epoch), int(step), split, member, metric, float(value))

        rows = read_rows(self.path, METRICS_COLUMNS, parse, "metrics")
        if keep is not None:
            if keep > len(rows):
                raise UserError(f"{self.path}: has {len(rows)} rows but the trainer state expects {keep}")
            rows = rows[:keep]
        self.rows = rows


@contextlib.contextmanager
def run_logger(log_file: Path, console: bool = True, name: str = "collapse_lab.train") -> Iterator[logging.Logger]:
    """A logger writing to ``log_file`` (appended) and, with ``console``, to stderr; handlers removed on exit.

    Records logged with ``extra={"file_only": True}`` skip the console (e.g. the error the CLI prints anyway).
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handlers: List[logging.Handler] = [logging.FileHandler(log_file, mode="a", encoding="utf-8")]
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.addFilter(lambda record: not getattr(record, "file_only", False))  # extra={"file_only": True}
        handlers.append(stream)
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
