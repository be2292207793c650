"""Render every figure of a sweep (``collapse-lab figures``) as PNG + PDF: the nine figures of issue 5,
figure 10 (a scale-free companion of figure 6), figure 11 (claim C9, the shared embedding vs N), figure 12 (a
scale-free metric over training, from ``spectra_trace.csv``), figure 13 (a layer × N map of a scale-free
ratio per recipe), figures 14 and 15 (the paper's Tables V and VI) and figure 16 (KDEF against its ablations
and the capacity control; figures 1-3 draw the paper's recipes only and leave these controls to it).

Each figure is built from a tidy table (:mod:`collapse_lab.results.tables`) and drawn by one ``plot_*``
function; a figure whose inputs are missing (no spectra yet, no KDEF run...) is skipped with the reason, and so
is a figure whose data are all zero (KA(W, τ = 4) = 0 in every layer draws a blank figure; its old files are
removed). The source is a sweep directory or a committed ``results.csv`` (or a directory holding one and no run
directories): the figures that need the run directories' files are then skipped and their earlier files and
``figures.json`` entries kept. Every figure carries a caption with the dataset, the seeds, the values of N and
the number of runs (below the plot, in the file metadata and in ``figures.json``). Every file carries the sweep
id, the git commit of the plotting code and the commits of the runs in its metadata, and ``figures.json`` in
the output directory lists what was written from which runs.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import pandas as pd

from collapse_lab.io.atomic import atomic_write_json
from collapse_lab.plotting.controls import plot_controls
from collapse_lab.plotting.degradation import (
    ordered_variants,
    plot_ensemble_auc,
    plot_gap,
    plot_student_auc,
    plot_student_variance,
)
from collapse_lab.plotting.embedding import plot_embedding_collapse
from collapse_lab.plotting.exam import plot_exam_weights
from collapse_lab.plotting.fields import plot_field_ia
from collapse_lab.plotting.paper_tables import plot_paper_table
from collapse_lab.plotting.spectra import (
    plot_erank_ratio_vs_n,
    plot_ka_vs_n,
    plot_normalized_spectra,
    plot_sv_heatmaps,
)
from collapse_lab.plotting.style import figure_metadata, has_data, save_figure, variant_styles
from collapse_lab.plotting.training import plot_collapse_map, plot_metric_over_training
from collapse_lab.results import tables
from collapse_lab.results.collect import SweepResults, load_results
from collapse_lab.results.paper_tables import table5_frame, table6_frame

__all__ = ["FIGURES", "FORMATS", "FigureSpec", "FigureReport", "Drawing", "render_figures", "draw_figure", "caption",
           "NEEDS_RUNS", "ALL_ZERO"]

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
    needs_runs: bool = False  # the table reads files of the run directories (not only results.csv)
    values: str = ""  # the column whose being all zero means a blank figure (skipped)


def _plot(function: Callable[..., Tuple[Any, Any]], **fixed: Any) -> Callable[..., Tuple[Any, Any]]:
    """``function`` with keyword arguments fixed (a named wrapper, so that figure specs stay comparable)."""
    import functools

    return functools.wraps(function)(functools.partial(function, **fixed))


#: the reason prefix of a figure skipped because the source is a results table without run directories
NEEDS_RUNS = "needs the sweep's run directories"


FIGURES: Tuple[FigureSpec, ...] = (
    FigureSpec("fig1_ensemble_auc", "Ensemble test AUC vs N per recipe of the paper (mean over seeds, 95% t band; "
               "paper Figs. 2a/4a/6a/8a), and each recipe minus the single model and minus vanilla-mean at the "
               "same N, paired by seed; KDEF's ablations and the capacity control are in fig16",
               _plot(tables.run_table, controls=False), _plot(plot_ensemble_auc, differences=True), "finished runs"),
    FigureSpec("fig2_student_auc", "Best and worst student test AUC vs N, every student as a point (paper Figs. "
               "2b/4b/6b/8b), and the best student minus the single model and minus vanilla-mean's, paired by "
               "seed; recipes of the paper only", _plot(tables.student_table, controls=False),
               _plot(plot_student_auc, differences=True), "runs with students"),
    FigureSpec("fig3_gap", "Ensemble AUC minus best student AUC vs N (paper Figs. 5, 8c), and each recipe's gap "
               "minus vanilla-mean's at the same N, paired by seed; recipes of the paper only",
               _plot(tables.gap_table, controls=False), _plot(plot_gap, differences=True), "finished runs"),
    FigureSpec("fig4_student_variance", "Distribution of student test AUC at each N per recipe",
               tables.student_table, plot_student_variance, "runs with students"),
    FigureSpec("fig5_sv_heatmaps", "Sorted singular values of the hidden Linear weights of the best student, "
               "colour clipped to [0, tau], tau line, KA per layer: single model vs vanilla-mean and KDEF at the "
               "largest N (paper Figs. 3, 9)", tables.heatmap_table, plot_sv_heatmaps,
               "singular_values.npz (collapse-lab spectrum)", needs_runs=True, values="ka"),
    FigureSpec("fig6_knowledge_abundance", "Knowledge abundance KA(W, tau) of each hidden layer of the best "
               "student vs N per recipe (claim C3)", tables.ka_table, plot_ka_vs_n, "spectrum.csv with KA",
               values="ka"),
    FigureSpec("fig7_field_ia", "Per-field information abundance of the embedding tables (mean over seeds, 95% t "
               "interval) vs a same-shape Gaussian baseline (Guo et al. Fig. 2 analogue)", tables.field_ia_table,
               plot_field_ia, "spectrum.csv with embedding IA", needs_runs=True),
    FigureSpec("fig8_normalized_spectra", "Normalised singular values sigma_i/sigma_1 (log) of the embedding "
               "input and the best student's last hidden activations per recipe", tables.spectra_table,
               plot_normalized_spectra, "singular_values.npz with input/activations", needs_runs=True),
    FigureSpec("fig9_exam_weights", "Examination-mechanism weights over training: N*lambda_k per student and the "
               "relative spread of lambda and mu (claim C7)", tables.exam_table, plot_exam_weights,
               "KDEF runs with N > 1 and lambda/mu in metrics.csv", needs_runs=True),
    FigureSpec("fig10_erank_ratio", "Effective rank of each hidden weight of the best student over that of a "
               "same-shape Gaussian matrix vs N per recipe: the scale-free reading of claim C3 (1 = random-like)",
               tables.erank_ratio_table, plot_erank_ratio_vs_n, "spectrum.csv with weight effective ranks"),
    FigureSpec("fig11_embedding_collapse", "Information abundance and effective rank of the shared embedding "
               "over those of same-shape Gaussian tables vs N per recipe (mean over seeds, 95% t band): claim C9, "
               "knowledge transfer narrows the shared embedding", tables.embedding_table, plot_embedding_collapse,
               "spectrum.csv with embedding ratios (emb_ia_ratio_mean)"),
    FigureSpec("fig12_over_training", "A scale-free metric of the best student's hidden weights and of the shared "
               "embedding over optimizer steps, relative to same-shape Gaussian matrices, per recipe at its largest "
               "N and the single model (mean over seeds, 95% t band)", tables.trace_table,
               plot_metric_over_training, "spectra_trace.csv (train with spectra_every >= 1)", needs_runs=True),
    FigureSpec("fig13_collapse_map", "Layer x N map of a scale-free ratio to a same-shape Gaussian per recipe "
               "(mean over seeds; the shared embedding as the first row)", tables.collapse_map_table,
               plot_collapse_map, "spectrum.csv with per-layer ratios"),
    FigureSpec("fig14_table5", "Table V of the paper: KDEF_Latest (PNN + FINAL(1B) + ECN), its students alone and "
               "inside it, and its ablations: test AUC per row (mean over seeds, 95% t interval) and the paired "
               "differences the paper's rows imply, beside the paper's", table5_frame, plot_paper_table,
               "the table5 preset's recipes (vanilla-mean@pnn, kdef@pnn+final+ecn, ...)"),
    FigureSpec("fig15_table6", "Table VI of the paper: each backbone X alone and as KDEF_X inside FINAL(1B) + ECN + X: "
               "test AUC per row (mean over seeds, 95% t interval) and KDEF_X - X paired by seed, beside the "
               "paper's", table6_frame, plot_paper_table,
               "the table6 preset's recipes (vanilla-mean@X, kdef@final+ecn+X)"),
    FigureSpec("fig16_controls", "Do KDEF's parts and its parameter count explain its gain? Ensemble test AUC vs N "
               "of KDEF, its ablations (kd-only, dml-only, uniform weights, no examination), vanilla-mean and the "
               "capacity-matched single student (parameters of K students, at N = K) (mean over seeds, 95% t band), "
               "and KDEF minus each ablation and minus the capacity-matched model at the same N, paired by seed",
               tables.controls_table, plot_controls,
               "the ml100k preset's recipes kdef and a control (kdef-kd-only, kdef-dml-only, kdef-uniform, "
               "kdef-noem or vanilla-mean-capacity)"),
)
#: the scale-free metric of figure 12 (a ``metric`` of spectra_trace.csv) and the ratio of figure 13
DEFAULT_TRACE_METRIC = "effective_rank"
DEFAULT_MAP_MEASURE = "ia_ratio"


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
            raise UserError(f"unknown figure {name!r}; valid: {', '.join(known)} (or fig1 ... fig{len(FIGURES)})")
        chosen.append(spec)
    return chosen


def caption(runs: pd.DataFrame, dataset: str) -> str:
    """``"<dataset>; seeds a, b, c (k); N ∈ {…}; r runs"`` of the runs a figure is drawn from.

    Example:
        >>> caption(pd.DataFrame({"seed": [2, 1, 1], "n": [1, 4, 2]}), "movielens-100k")
        'movielens-100k; seeds 1, 2 (2); N ∈ {1, 2, 4}; 3 runs'
    """
    seeds = sorted({int(v) for v in runs["seed"].dropna()})
    ns = sorted({int(v) for v in runs["n"].dropna()})
    return (f"{dataset}; seeds {', '.join(map(str, seeds))} ({len(seeds)}); N ∈ {{{', '.join(map(str, ns))}}}; "
            f"{len(runs)} runs")


def _all_zero(table: pd.DataFrame, column: str) -> bool:
    values = pd.to_numeric(table[column], errors="coerce").dropna() if column in table else pd.Series([], float)
    return bool(len(values)) and bool((values == 0).all())


#: the reason prefix of a figure skipped because every value it would draw is 0
ALL_ZERO = "all zero"
#: the reason prefix of a figure skipped because it would draw nothing (every value missing)
NO_DATA = "no data"


@dataclass
class Drawing:
    """One figure drawn (``figure``, ``description``) or skipped (``figure`` None, ``reason``)."""

    figure: Any = None
    description: str = ""
    reason: str = ""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Dict[str, str]:
        """In a notebook: the figure as PNG (with its description as plain text), or why it is not drawn as
        Markdown — one rich type each, so no front end prefers the text over the image."""
        if self.figure is None:
            return {"text/markdown": f"*{self.reason}*", "text/plain": self.reason}
        import base64
        import io

        from collapse_lab.plotting.style import style_context

        buf = io.BytesIO()
        with style_context():
            self.figure.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": self.description}


def _draw(spec: FigureSpec, subset: pd.DataFrame, table_only: bool, tau: float, threshold: str,
          trace_metric: str, map_measure: str) -> Drawing:
    """Build the table of ``spec`` from the results of one dataset and draw it, or say why not."""
    from collapse_lab.spectral.functional import threshold_label

    default_ka = threshold == "abs" and tau == DEFAULT_TAU
    shows_ka = spec.table in (tables.heatmap_table, tables.ka_table)
    # KA at the default τ is in results.csv: figure 5 is known blank without reading the runs' spectra
    blank_ka = spec.table is tables.heatmap_table and default_ka and _all_zero(tables.ka_table(subset), "ka")
    if table_only and spec.needs_runs and not blank_ka:
        return Drawing(reason=f"{NEEDS_RUNS} ({spec.needs}); drawn from results.csv only")
    kwargs: Dict[str, Any] = {}
    description = spec.description
    if blank_ka:
        table = tables.ka_table(subset)
    elif spec.table is tables.heatmap_table:
        table = spec.table(subset, tau=tau, threshold=threshold)
    elif spec.table is tables.ka_table:
        table = spec.table(subset, tau=None if default_ka else tau, threshold=threshold)
    elif spec.table is tables.trace_table:
        table, kwargs = spec.table(subset, metric=trace_metric), {"metric": trace_metric}
        description += f"; metric {trace_metric}"
    elif spec.table is tables.collapse_map_table:
        table, kwargs = spec.table(subset, measure=map_measure), {"measure": map_measure}
        description += f"; ratio {map_measure}"
    else:
        table = spec.table(subset)
    if table.empty:
        return Drawing(reason=f"needs {spec.needs}")
    if spec.values and _all_zero(table, spec.values):
        what = f"KA ({threshold_label(threshold, tau)})" if shows_ka else spec.values
        return Drawing(reason=f"{ALL_ZERO}: {what} is 0 for every layer, recipe and N, a blank figure (try "
                              "threshold mp or rel, or the scale-free figures 10 and 13)")
    if shows_ka:
        kwargs = {"tau": tau, "threshold": threshold}
        description += f"; KA threshold {threshold_label(threshold, tau)}"
    with variant_styles(ordered_variants(subset)):  # a recipe keeps its style when drawn alone (draw_figure)
        fig, _ = spec.plot(table, **kwargs)
    if not any(has_data(axis) for axis in fig.axes if axis.get_visible()):
        return Drawing(reason=f"{NO_DATA}: every value of {spec.needs} is missing (NaN) for every recipe and N, a "
                              "blank figure")
    return Drawing(fig, description)


def draw_figure(collected: SweepResults, name: str, tau: Optional[float] = None, threshold: str = "abs",
                trace_metric: str = DEFAULT_TRACE_METRIC, map_measure: str = DEFAULT_MAP_MEASURE,
                results: Optional[pd.DataFrame] = None) -> Drawing:
    """One standard figure (``fig5`` or its stem) of loaded results (:func:`~collapse_lab.results.load_results`)
    as a :class:`Drawing`: a notebook shows the figure, or the reason it is not drawn (needs the run
    directories, all zero...), with the same rules as :func:`render_figures`. ``results`` (default: all of
    ``collected``) may be a selection of its rows, e.g. some recipes; with several datasets, pass one.
    """
    from collapse_lab.spectral.analysis import ka_taus

    (spec,) = _selected([name])
    tau = ka_taus(threshold, tau)[threshold]
    frame = collected.results if results is None else results
    return _draw(spec, frame, collected.table_only, tau, threshold, trace_metric, map_measure)


def render_figures(sweep_dir: Union[str, Path], out_dir: Optional[Union[str, Path]] = None,
                   tau: Optional[float] = None, formats: Sequence[str] = ("png", "pdf"),
                   only: Optional[Sequence[str]] = None, progress: Optional[bool] = None,
                   threshold: str = "abs", trace_metric: str = DEFAULT_TRACE_METRIC,
                   map_measure: str = DEFAULT_MAP_MEASURE) -> FigureReport:
    """Draw the standard figures of a sweep into ``out_dir`` (default ``<sweep_dir>/figures``).

    With several datasets in one sweep, every figure is drawn once per dataset (``<stem>_<dataset>``).

    Args:
        sweep_dir: the sweep directory (or a directory of run directories), or a ``results.csv`` of
            ``collapse-lab results`` (or a directory holding one and no runs, e.g. ``figures/ml100k``): then only
            the figures drawn from the table are redrawn (:func:`~collapse_lab.results.collect.load_results`).
        out_dir: where the PNG/PDF files go (default ``<sweep_dir>/figures``; for a results table, its directory).
        tau: the knowledge-abundance threshold parameter of figures 5 and 6 (None = the kind's default: 4 for
            ``abs``, the paper's). KA at the absolute τ = 4 is read from ``spectrum.csv``; any other threshold is
            recomputed from ``singular_values.npz``. The absolute τ does not fit every scale: on small data where
            trained weights stay near their initialisation (σ_max ≈ 2 for xavier-initialised square layers), τ = 4
            gives KA = 0 everywhere (the figures are then skipped as blank); ``threshold="mp"`` counts σ above the
            random bulk instead.
        threshold: ``abs`` (σ > τ) | ``mp`` (σ > τ × the Marchenko–Pastur bulk edge of an equal-norm Gaussian) |
            ``rel`` (σ > τ·σ_max); named in the titles, labels and metadata of figures 5 and 6.
        formats: file formats.
        only: figure stems or ``figN`` short names to draw (default: all).
        progress: tqdm over figures (``None``: only on a terminal).
        trace_metric: the ``metric`` of ``spectra_trace.csv`` drawn over training (figure 12), as its ratio to
            same-shape Gaussian matrices: ``effective_rank`` (default), ``information_abundance``,
            ``stable_rank``, ...
        map_measure: the per-layer ratio of figure 13: ``ia_ratio`` (default; the shared embedding's row is in
            every results.csv) or ``erank_ratio``.

    Raises:
        UserError: no finished run in ``sweep_dir``, an unknown figure name, format or measure.
    """
    from tqdm.auto import tqdm

    from collapse_lab.errors import UserError
    from collapse_lab.spectral.analysis import ka_taus

    tau = ka_taus(threshold, tau)[threshold]  # validates both
    specs = _selected(only)
    for fmt in formats:
        if fmt not in FORMATS:
            raise UserError(f"unknown figure format {fmt!r}; valid: {', '.join(FORMATS)}")
    if map_measure not in tables.EMBEDDING_RATIOS:
        raise UserError(f"unknown map measure {map_measure!r}; valid: {', '.join(tables.EMBEDDING_RATIOS)}")
    collected: SweepResults = load_results(sweep_dir)
    table_only = collected.table_only
    default_out = collected.sweep_dir if table_only else Path(sweep_dir) / "figures"
    out = Path(out_dir) if out_dir is not None else default_out
    report = FigureReport(collected.sweep_id, out, notes=[f"skipped run {r}: {why}" for r, why in collected.skipped])
    results = collected.results
    datasets = list(dict.fromkeys(results["dataset"].astype(str)))
    # a committed table is named as given (e.g. figures/ml100k), not by this machine's absolute path
    where = str(Path(sweep_dir)) if table_only else str(Path(sweep_dir).resolve())
    index: Dict[str, Any] = {"sweep_id": collected.sweep_id, "sweep_dir": where,
                             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             "figures": []}
    jobs = [(spec, ds) for ds in datasets for spec in specs]
    # one style per recipe in every figure of the sweep (student mixes get theirs in one order)
    with variant_styles(ordered_variants(results)):
        for spec, dataset in tqdm(jobs, desc="figures", unit="fig", disable=None if progress is None else not progress):
            stem = spec.stem if len(datasets) == 1 else f"{spec.stem}_{dataset}"
            subset = results[results["dataset"].astype(str) == dataset]
            drawing = _draw(spec, subset, table_only, tau, threshold, trace_metric, map_measure)
            if drawing.figure is None:
                report.skipped[stem] = drawing.reason
                # an earlier drawing of the same data would contradict it
                if drawing.reason.startswith((ALL_ZERO, NO_DATA)):
                    for fmt in formats:
                        (out / f"{stem}.{fmt}").unlink(missing_ok=True)
                continue
            fig, description = drawing.figure, drawing.description
            runs_table = subset[subset["member"].astype(str) == "ensemble"]
            runs = sorted(set(subset["run"]))
            text = caption(runs_table, dataset)
            fig.text(0.0, 0.0, text, ha="left", va="top", fontsize=6.5, color="0.3")
            commits = sorted({str(c) for c in subset["git_commit"].dropna()}) if "git_commit" in subset else []
            meta = figure_metadata(collected.sweep_id, description,
                                   extra={"dataset": dataset, "runs": len(runs), "run_git_commits": ",".join(commits),
                                          "caption": text})
            report.written[stem] = save_figure(fig, stem, out, meta, formats=formats)
            index["figures"].append({"stem": stem, "description": description, "caption": text, "dataset": dataset,
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
        elif stem is not None and not (stem in index["skipped"]
                                       and not str(index["skipped"][stem]).startswith(NEEDS_RUNS)):
            merged.append(entry)  # not redrawn now: kept (also when only the run directories could redraw it)
    return {**index, "figures": merged + list(new.values())}
