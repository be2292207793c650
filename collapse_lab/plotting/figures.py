"""Render every figure of a sweep (``collapse-lab figures``) as PNG + PDF: the nine figures of issue 5 and
figure 10, a scale-free companion of figure 6.

Each figure is built from a tidy table (:mod:`collapse_lab.results.tables`) and drawn by one ``plot_*``
function; a figure whose inputs are missing (no spectra yet, no KDEF run...) is skipped with the reason. Every
file carries the sweep id, the git commit of the plotting code and the commits of the runs in its metadata,
and ``figures.json`` in the output directory lists what was written from which runs.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import pandas as pd

from collapse_lab.io.atomic import atomic_write_json
from collapse_lab.plotting.degradation import plot_ensemble_auc, plot_gap, plot_student_auc, plot_student_variance
from collapse_lab.plotting.exam import plot_exam_weights
from collapse_lab.plotting.fields import plot_field_ia
from collapse_lab.plotting.spectra import (
    plot_erank_ratio_vs_n,
    plot_ka_vs_n,
    plot_normalized_spectra,
    plot_sv_heatmaps,
)
from collapse_lab.plotting.style import figure_metadata, save_figure
from collapse_lab.results import tables
from collapse_lab.results.collect import collect_results

__all__ = ["FIGURES", "FORMATS", "FigureSpec", "FigureReport", "render_figures"]

DEFAULT_TAU = 4.0  # the paper's KA threshold; KA at this τ is read from spectrum.csv
#: file formats a figure can be written in
FORMATS = ("eps", "jpg", "pdf", "png", "svg")


@dataclass(frozen=True)
class FigureSpec:
    """One standard figure: file stem, what it shows, its table builder and its plot function."""

    stem: str
    description: str
    table: Callable[[pd.DataFrame], pd.DataFrame]
    plot: Callable[..., Tuple[Any, Any]]
    needs: str  # what the table needs, named in the skip reason


FIGURES: Tuple[FigureSpec, ...] = (
    FigureSpec("fig1_ensemble_auc", "Ensemble test AUC vs N per recipe (mean over seeds, 95% t band; paper Figs. "
               "2a/4a/6a/8a)", tables.run_table, plot_ensemble_auc, "finished runs"),
    FigureSpec("fig2_student_auc", "Best and worst student test AUC vs N, every student as a point (paper Figs. "
               "2b/4b/6b/8b)", tables.student_table, plot_student_auc, "runs with students"),
    FigureSpec("fig3_gap", "Ensemble AUC minus best student AUC vs N (paper Figs. 5, 8c)", tables.gap_table,
               plot_gap, "finished runs"),
    FigureSpec("fig4_student_variance", "Distribution of student test AUC at each N per recipe",
               tables.student_table, plot_student_variance, "runs with students"),
    FigureSpec("fig5_sv_heatmaps", "Sorted singular values of the hidden Linear weights of the best student, "
               "colour clipped to [0, tau], tau line, KA per layer: single model vs vanilla-mean and KDEF at the "
               "largest N (paper Figs. 3, 9)", tables.heatmap_table, plot_sv_heatmaps,
               "singular_values.npz (collapse-lab spectrum)"),
    FigureSpec("fig6_knowledge_abundance", "Knowledge abundance KA(W, tau) of each hidden layer of the best "
               "student vs N per recipe (claim C3)", tables.ka_table, plot_ka_vs_n, "spectrum.csv with KA"),
    FigureSpec("fig7_field_ia", "Per-field information abundance of the embedding tables vs a same-shape "
               "Gaussian baseline (Guo et al. Fig. 2 analogue)", tables.field_ia_table, plot_field_ia,
               "spectrum.csv with embedding IA"),
    FigureSpec("fig8_normalized_spectra", "Normalised singular values sigma_i/sigma_1 (log) of the embedding "
               "input and the best student's last hidden activations per recipe", tables.spectra_table,
               plot_normalized_spectra, "singular_values.npz with input/activations"),
    FigureSpec("fig9_exam_weights", "Examination-mechanism weights over training: N*lambda_k per student and the "
               "relative spread of lambda and mu (claim C7)", tables.exam_table, plot_exam_weights,
               "KDEF runs with N > 1 and lambda/mu in metrics.csv"),
    FigureSpec("fig10_erank_ratio", "Effective rank of each hidden weight of the best student over that of a "
               "same-shape Gaussian matrix vs N per recipe: the scale-free reading of claim C3 (1 = random-like)",
               tables.erank_ratio_table, plot_erank_ratio_vs_n, "spectrum.csv with weight effective ranks"),
)


@dataclass
class FigureReport:
    """What :func:`render_figures` wrote and skipped."""

    sweep_id: str
    out_dir: Path
    written: Dict[str, List[Path]] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        """A JSON-able dict for ``collapse-lab figures --json``: files per figure stem, skipped stems with why."""
        return {"sweep_id": self.sweep_id, "out_dir": str(self.out_dir),
                "written": {stem: [str(p) for p in paths] for stem, paths in self.written.items()},
                "skipped": dict(self.skipped), "notes": list(self.notes)}


def _selected(names: Optional[Sequence[str]]) -> List[FigureSpec]:
    if not names:
        return list(FIGURES)
    from collapse_lab.errors import UserError

    known = {f.stem: f for f in FIGURES}
    short = {f.stem.split("_", 1)[0]: f for f in FIGURES}
    chosen = []
    for name in names:
        spec = known.get(name) or short.get(name)
        if spec is None:
            raise UserError(f"unknown figure {name!r}; valid: {', '.join(known)} (or fig1 ... fig9)")
        chosen.append(spec)
    return chosen


def render_figures(sweep_dir: Union[str, Path], out_dir: Optional[Union[str, Path]] = None,
                   tau: Optional[float] = None, formats: Sequence[str] = ("png", "pdf"),
                   only: Optional[Sequence[str]] = None, progress: Optional[bool] = None,
                   threshold: str = "abs") -> FigureReport:
    """Draw the standard figures of a sweep into ``out_dir`` (default ``<sweep_dir>/figures``).

    With several datasets in one sweep, every figure is drawn once per dataset (``<stem>_<dataset>``).

    Args:
        sweep_dir: the sweep directory (or a directory of run directories).
        out_dir: where the PNG/PDF files go.
        tau: the knowledge-abundance threshold parameter of figures 5 and 6 (None = the kind's default: 4 for
            ``abs``, the paper's). KA at the absolute τ = 4 is read from ``spectrum.csv``; any other threshold is
            recomputed from ``singular_values.npz``. The absolute τ does not fit every scale: on small data where
            trained weights stay near their initialisation (σ_max ≈ 2 for xavier-initialised square layers), τ = 4
            gives KA = 0 everywhere; ``threshold="mp"`` counts σ above the random bulk instead.
        threshold: ``abs`` (σ > τ) | ``mp`` (σ > τ × the Marchenko–Pastur bulk edge of an equal-norm Gaussian) |
            ``rel`` (σ > τ·σ_max); named in the titles, labels and metadata of figures 5 and 6.
        formats: file formats.
        only: figure stems or ``figN`` short names to draw (default: all ten).
        progress: tqdm over figures (``None``: only on a terminal).

    Raises:
        UserError: no finished run in ``sweep_dir``, an unknown figure name or an unknown format.
    """
    from tqdm.auto import tqdm

    from collapse_lab.spectral.functional import threshold_label
    from collapse_lab.spectral.report import ka_taus

    tau = ka_taus(threshold, tau)[threshold]  # validates both
    default_ka = threshold == "abs" and tau == DEFAULT_TAU
    specs = _selected(only)
    for fmt in formats:
        if fmt not in FORMATS:
            from collapse_lab.errors import UserError

            raise UserError(f"unknown figure format {fmt!r}; valid: {', '.join(FORMATS)}")
    collected = collect_results(sweep_dir, progress=False)
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "figures"
    report = FigureReport(collected.sweep_id, out, notes=[f"skipped run {r}: {why}" for r, why in collected.skipped])
    results = collected.results
    datasets = list(dict.fromkeys(results["dataset"].astype(str)))
    index: Dict[str, Any] = {"sweep_id": collected.sweep_id, "sweep_dir": str(Path(sweep_dir).resolve()),
                             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             "figures": []}
    jobs = [(spec, ds) for ds in datasets for spec in specs]
    for spec, dataset in tqdm(jobs, desc="figures", unit="fig", disable=None if progress is None else not progress):
        stem = spec.stem if len(datasets) == 1 else f"{spec.stem}_{dataset}"
        subset = results[results["dataset"].astype(str) == dataset]
        shows_ka = spec.table in (tables.heatmap_table, tables.ka_table)
        if spec.table is tables.heatmap_table:
            table = spec.table(subset, tau=tau, threshold=threshold)
        elif spec.table is tables.ka_table:
            table = spec.table(subset, tau=None if default_ka else tau, threshold=threshold)
        else:
            table = spec.table(subset)
        if table.empty:
            report.skipped[stem] = f"needs {spec.needs}"
            continue
        kwargs = {"tau": tau, "threshold": threshold} if shows_ka else {}
        fig, _ = spec.plot(table, **kwargs)
        runs = sorted(set(subset["run"]))
        commits = sorted({str(c) for c in subset["git_commit"].dropna()})
        description = f"{spec.description}; KA threshold {threshold_label(threshold, tau)}" if shows_ka \
            else spec.description
        meta = figure_metadata(collected.sweep_id, description,
                               extra={"dataset": dataset, "runs": len(runs), "run_git_commits": ",".join(commits)})
        report.written[stem] = save_figure(fig, stem, out, meta, formats=formats)
        index["figures"].append({"stem": stem, "description": description, "dataset": dataset,
                                 "files": [p.name for p in report.written[stem]], "runs": runs,
                                 "git_commit": meta["git_commit"]})
    index["skipped"] = report.skipped
    atomic_write_json(out / "figures.json", _keep_other_entries(out / "figures.json", index))
    return report


def _keep_other_entries(path: Path, index: Dict[str, Any]) -> Dict[str, Any]:
    """``index`` plus the entries of an earlier ``figures.json`` of the same sweep whose figures were not
    redrawn now, so ``--only fig3`` updates one entry instead of dropping the other nine."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return index
    if not isinstance(previous, dict) or previous.get("sweep_id") != index["sweep_id"]:
        return index
    new = {entry["stem"]: entry for entry in index["figures"]}
    merged = []
    for entry in previous.get("figures", []):
        stem = entry.get("stem") if isinstance(entry, dict) else None
        if stem in new:
            merged.append(new.pop(stem))  # redrawn: the new entry, in the old place
        elif stem is not None and stem not in index["skipped"]:
            merged.append(entry)
    return {**index, "figures": merged + list(new.values())}
