"""``collapse-lab reproduce --preset NAME``: the whole job — data, sweep, spectra, results, figures.

Steps, each resumable (rerunning the command redoes only what is missing):

1. prepare every dataset the preset's runs need that is not prepared yet (``collapse_lab.data.api``);
2. run the sweep (:func:`~collapse_lab.sweep.runner.run_sweep`; finished runs are skipped);
3. analyse the best checkpoint of every finished run without ``spectrum.csv``
   (``collapse_lab.spectral.analyze``; a failure is reported and the other runs go on);
4. write ``results.csv``, ``summary.csv``, ``paired_tests.csv`` (:func:`~collapse_lab.results.writer.write_results`);
5. draw the figures (:func:`~collapse_lab.plotting.figures.render_figures`).

Presets are the grid files ``configs/sweeps/<name>.yaml`` of the repository (next to the package); a path to
any grid file works too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.utils.resources import config_dir, config_names

__all__ = ["presets_dir", "preset_names", "resolve_preset", "prepare_datasets", "analyze_sweep", "AnalyzeReport",
           "ReproduceReport", "reproduce", "summary_lines"]


def presets_dir() -> Path:
    """``configs/sweeps`` of the source checkout, or its copy inside an installed wheel."""
    return config_dir("sweeps")


def preset_names() -> List[str]:
    """Names of the presets (``configs/sweeps/*.yaml``)."""
    return config_names("sweeps")


def resolve_preset(name_or_path: Union[str, Path]) -> Path:
    """The grid file of a preset name or a path; unknown names raise a UserError listing the presets."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"{path}: grid file not found")
        return path
    candidate = presets_dir() / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise UserError(f"unknown preset {str(name_or_path)!r}; valid: {', '.join(preset_names()) or 'none found'}")
    return candidate


def prepare_datasets(configs: Sequence[Dict[str, Any]], progress: Optional[bool] = None) -> List[str]:
    """Prepare every (dataset, data_root) of ``configs`` that is not prepared; returns the prepared names."""
    from collapse_lab.data.api import prepare_dataset
    from collapse_lab.data.catalog import resolve_processed

    done: List[str] = []
    for dataset, root in dict.fromkeys((c["dataset"], c.get("data_root")) for c in configs):
        try:
            resolve_processed(dataset, root)
        except UserError:
            prepare_dataset(dataset, data_root=root, progress=progress)
            done.append(str(dataset))
    return done


@dataclass
class AnalyzeReport:
    """What :func:`analyze_sweep` did."""

    analysed: List[str] = field(default_factory=list)
    already: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        """A JSON-able dict of the three lists."""
        return {"analysed": list(self.analysed), "already": list(self.already), "failed": dict(self.failed)}


def analyze_sweep(sweep_dir: Union[str, Path], progress: Optional[bool] = None) -> AnalyzeReport:
    """Run ``collapse_lab.spectral.analyze`` on the best checkpoint of every finished run of a sweep that has no
    ``spectrum.csv`` yet, writing ``<run>/spectrum/{spectrum.csv,singular_values.npz}`` (as ``collapse-lab
    spectrum RUN`` does)."""
    from tqdm.auto import tqdm

    from collapse_lab.results.collect import find_run_dirs, find_spectrum
    from collapse_lab.spectral import analyze
    from collapse_lab.spectral.analysis import default_out_dir
    from collapse_lab.sweep.runner import run_status

    report = AnalyzeReport()
    todo = []
    for run_dir in find_run_dirs(sweep_dir):
        if run_status(run_dir) != "complete":
            continue
        (report.already if find_spectrum(run_dir) is not None else todo).append(run_dir)
    report.already = [p.name for p in report.already]
    for run_dir in tqdm(todo, desc="spectra", unit="run", disable=None if progress is None else not progress):
        try:
            analyze(run_dir, out_dir=default_out_dir(run_dir), progress=False)  # <run>/spectrum/
        except Exception as exc:  # one unreadable checkpoint must not stop the job
            report.failed[run_dir.name] = f"{type(exc).__name__}: {exc}"
            continue
        if find_spectrum(run_dir) is None:
            report.failed[run_dir.name] = "analyze() wrote no spectrum.csv"
        else:
            report.analysed.append(run_dir.name)
    return report


@dataclass
class ReproduceReport:
    """Everything the job did, with the time of each step (seconds)."""

    preset: Path
    sweep: Any = None
    prepared: List[str] = field(default_factory=list)
    spectra: Optional[AnalyzeReport] = None
    results: Any = None
    figures: Any = None
    seconds: Dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.sweep and self.sweep.failed) or bool(self.spectra and self.spectra.failed)

    def to_json(self) -> Dict[str, Any]:
        """A JSON-able dict for ``collapse-lab reproduce --json``: each step's report (the results as their
        files and run count; ``collapse-lab results --json`` prints the tables), the seconds per step."""
        results = self.results.to_json() if self.results is not None else None
        return {"preset": str(self.preset), "failed": self.failed, "prepared": list(self.prepared),
                "sweep": self.sweep.to_json() if self.sweep is not None else None,
                "spectra": self.spectra.to_json() if self.spectra is not None else None,
                "results": {k: results[k] for k in ("runs", "files", "skipped")} if results else None,
                "figures": self.figures.to_json() if self.figures is not None else None,
                "seconds": dict(self.seconds), "total_seconds": round(sum(self.seconds.values()), 2)}


def _timed(report: ReproduceReport, step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        report.seconds[step] = round(time.perf_counter() - start, 2)


def reproduce(preset: Union[str, Path], out_dir: Optional[Union[str, Path]] = None,
              overrides: Sequence[str] = (), jobs: Optional[int] = None, threads: Optional[int] = None,
              figures_dir: Optional[Union[str, Path]] = None, device: str = "auto",
              progress: Optional[bool] = None, executor: Union[str, Any] = "local",
              keep_stale: bool = False) -> ReproduceReport:
    """Run a preset end to end (see the module docstring) and return what was done.

    Args:
        preset: a preset name (``quick``, ``ml100k``, ...) or a grid file.
        out_dir: the sweep directory (default ``sweeps/<preset name>``).
        overrides: extra ``key=v1,v2`` axes (e.g. ``["seed=1,2,3"]``).
        jobs: runs at the same time; threads: torch threads per run (default cores // jobs).
        executor: where the runs train: an executor name (``local``, ``ray``) or an instance (e.g.
            ``RayExecutor(address="auto")``; then ``jobs`` and ``threads`` are its own).
        figures_dir: where figures go (default ``<out_dir>/figures``).
        device: ``auto`` | ``cpu`` | ``cuda`` for training.
        progress: progress bars (``None``: only on a terminal).
        keep_stale: stale runs count as complete instead of being trained again (``--keep-stale``).

    Raises:
        UserError: unknown preset, bad grid, a dataset that cannot be prepared, or no run finished at all.
    """
    from collapse_lab.plotting.figures import render_figures
    from collapse_lab.results.writer import write_results
    from collapse_lab.sweep.runner import plan_sweep, run_sweep

    path = resolve_preset(preset)
    report = ReproduceReport(path)
    spec, points, sweep_dir = plan_sweep(path, out_dir, overrides)
    report.prepared = _timed(report, "data", prepare_datasets, [p.config for p in points], progress)
    report.sweep = _timed(report, "sweep", run_sweep, spec, out_dir=sweep_dir, overrides=overrides, jobs=jobs,
                          threads=threads, device=device, progress=progress, executor=executor,
                          keep_stale=keep_stale)
    report.spectra = _timed(report, "spectra", analyze_sweep, sweep_dir, progress)
    if report.sweep.failed and not report.sweep.completed and not report.sweep.skipped:
        name, error = next(iter(report.sweep.failed.items()))
        raise UserError(f"{sweep_dir}: no run finished; {len(report.sweep.failed)} failed, the first ({name}) with "
                        f"{error} (every error is in {sweep_dir / 'sweep.json'})")
    report.results = _timed(report, "results", write_results, sweep_dir, progress=progress)
    report.figures = _timed(report, "figures", render_figures, sweep_dir, out_dir=figures_dir, progress=progress)
    return report


def summary_lines(report: ReproduceReport) -> Tuple[List[str], List[str]]:
    """``(stdout lines, stderr lines)`` describing a finished :func:`reproduce` call."""
    out, err = [], []
    if report.prepared:
        out.append(f"prepared: {', '.join(report.prepared)}")
    out.append(report.sweep.summary_line())
    err += [f"warning: {note}" for note in report.sweep.warnings]
    err += [f"warning: {name}: {note}" for name, note in report.sweep.dataset_mismatches.items()]
    err += [f"failed run {name}: {why}" for name, why in report.sweep.failed.items()]
    spectra = report.spectra
    out.append(f"spectra: {len(spectra.analysed)} analysed, {len(spectra.already)} already, "
               f"{len(spectra.failed)} failed")
    err += [f"spectrum failed for {name}: {why}" for name, why in spectra.failed.items()]
    out.append("results: " + ", ".join(str(p) for p in report.results.paths.values()))
    figures = report.figures
    out.append(f"figures: {len(figures.written)} -> {figures.out_dir}")
    err += [f"figure skipped {stem}: {why}" for stem, why in figures.skipped.items()]
    out.append("time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()) +
               f", total {sum(report.seconds.values()):.1f}")
    return out, err
