"""The run directory: fixed file names, creation rules, the tidy ``metrics.csv`` writer and the run log.

Layout (README "Run directory")::

    <run>/config.yaml                         resolved config
    <run>/manifest.json                       the index the analysis side reads (io/manifest.py)
    <run>/metrics.csv                         epoch,step,split,member,metric,value
    <run>/train.log                           the log (appended; the only file not replaced atomically)
    <run>/checkpoints/best/model.safetensors  best weights (early-stopping monitor)
    <run>/checkpoints/last/model.safetensors  weights after the last finished epoch (for --resume)
    <run>/checkpoints/epoch_{k:04d}/model.safetensors   with save_every
    <run>/probe.safetensors                   hidden activations on the probe rows
    <run>/spectra_trace.csv                   collapse metrics over training (spectra_every; train/spectra.py)
    <run>/trainer_state.pt                    optimizer, schedule, counters, RNG states

An existing non-empty directory is refused unless the caller resumes it or overwrites it; only a directory
holding a ``manifest.json`` is ever deleted by an overwrite.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Iterator, List, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_write_text

__all__ = ["RunDir", "MetricsLog", "METRICS_COLUMNS", "run_logger"]

METRICS_COLUMNS = ("epoch", "step", "split", "member", "metric", "value")


class RunDir:
    """Paths of one run directory."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)

    config_yaml = property(lambda self: self.path / "config.yaml")
    manifest_json = property(lambda self: self.path / "manifest.json")
    metrics_csv = property(lambda self: self.path / "metrics.csv")
    train_log = property(lambda self: self.path / "train.log")
    probe = property(lambda self: self.path / "probe.safetensors")
    spectra_trace = property(lambda self: self.path / "spectra_trace.csv")
    trainer_state = property(lambda self: self.path / "trainer_state.pt")
    checkpoints = property(lambda self: self.path / "checkpoints")

    def checkpoint(self, name: str) -> Path:
        """``checkpoints/<name>/model.safetensors``."""
        return self.checkpoints / name / "model.safetensors"

    def relative(self, path: Path) -> str:
        """``path`` relative to the run directory, POSIX style (what the manifest records)."""
        return Path(path).relative_to(self.path).as_posix()

    @classmethod
    def prepare(cls, path: Union[str, Path], resume: bool = False, overwrite: bool = False,
                check_only: bool = False) -> RunDir:
        """Create (or reopen with ``resume``) a run directory; ``check_only`` validates without touching disk.

        Raises:
            UserError: the directory exists and is not empty (without ``resume``/``overwrite``), or ``resume``
                was asked for a directory that holds no run.
        """
        run = cls(path)
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
            if not run.manifest_json.exists():  # never delete a directory that is not a run (e.g. --out .)
                raise UserError(f"{run.path}: exists and is not a collapse-lab run directory (no manifest.json); "
                                "refusing to overwrite it — choose another --out")
            if check_only:
                return run
            if run.path.is_dir():
                shutil.rmtree(run.path)
            else:
                run.path.unlink()
        if not check_only:
            run.path.mkdir(parents=True, exist_ok=True)
        return run


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
        rows: List[Tuple[int, int, str, str, str, float]] = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is not None and tuple(header) != METRICS_COLUMNS:
                    raise UserError(f"{self.path}: line 1: expected header {','.join(METRICS_COLUMNS)}")
                for line, row in enumerate(reader, start=2):
                    try:
                        epoch, step, split, member, metric, value = row
                        rows.append((int(epoch), int(step), split, member, metric, float(value)))
                    except ValueError:
                        raise UserError(f"{self.path}: line {line}: malformed metrics row {row!r}") from None
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
