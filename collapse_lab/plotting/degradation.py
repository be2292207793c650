"""Scaling figures: ensemble AUC, student AUC, ensemble − best-student gap and student variance vs N.

These reproduce docs/method.md §9 Figs. 2(a)/4(a)/6(a)/8(a) (ensemble AUC vs N), 2(b)/4(b)/6(b)/8(b) (best and worst
sub-network), 5 and 8(c) (gap), with means over seeds and Student-t 95% bands (:func:`collapse_lab.results.stats
.mean_ci`). Inputs are tidy DataFrames from :mod:`collapse_lab.results.tables`:

* run level (one row per run): ``variant``, ``n``, ``seed`` and the metric column;
* student level (one row per student of a run): ``run``, ``variant``, ``n``, ``seed``, ``member``, ``test_auc``.

AUC values are fractions in the tables and drawn in percent (``scale=100``), as in the paper. How recipes measured
at some N only are drawn (levels at N = 1, the keys of figure 2, the sparse boxes of figure 4) is in
:mod:`collapse_lab.plotting.partial_n`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.plotting.partial_n import (
    SINGLE_LABEL,
    box_legend,
    draw_level,
    hatch_dodged_boxes,
    only_at_one,
    sparse_boxes,
    student_legend,
)
from collapse_lab.plotting.style import (
    new_axes,
    place_legend,
    shared_colour_hatches,
    style_context,
    variant_style,
    variant_styles,
)
from collapse_lab.results.collect import VARIANT_ORDER
from collapse_lab.results.differences import DIFFERENCE_BASELINES, SINGLE_VARIANT
from collapse_lab.results.stats import mean_ci

__all__ = ["plot_metric_vs_n", "plot_ensemble_auc", "plot_gap", "plot_student_auc", "plot_student_variance",
           "ordered_variants", "draw_differences", "with_difference_panels", "line_look"]


def ordered_variants(df: pd.DataFrame, variants: Optional[Sequence[str]] = None) -> List[str]:
    """The recipes present in ``df`` (or the requested ones that are present) in :data:`VARIANT_ORDER`."""
    present = list(dict.fromkeys(df["variant"]))
    if variants is not None:
        return [v for v in variants if v in present]
    rank = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return sorted(present, key=lambda v: (rank.get(v, len(rank)), v))


def confidence_band(ax: Any, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str) -> None:
    """Shade [lo, hi] over x where both bounds are finite (single runs have no interval)."""
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.18, linewidth=0)


def line_look(style: Mapping[str, Any]) -> Dict[str, Any]:
    """The line style a figure gave a recipe (:func:`~collapse_lab.plotting.style.variant_looks`), as keyword
    arguments of ``ax.plot`` (none: the style sheet's solid line)."""
    return {"linestyle": style["linestyle"]} if "linestyle" in style else {}


def _n_axis(ax: Any, ns: Sequence[int]) -> None:
    ax.set_xticks(sorted(set(int(n) for n in ns)))
    ax.set_xlabel("number of sub-networks N")


def _is_single(df: pd.DataFrame) -> pd.Series:
    """Rows of the single model: vanilla-mean at N = 1 and its copies under other recipes (``single_model``,
    :func:`collapse_lab.results.tables.with_single_model`)."""
    mask = (df["variant"] == SINGLE_VARIANT) & (df["n"] == 1)
    return mask | df["single_model"].astype(bool) if "single_model" in df else mask


def _single_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The single-model rows once per run (the table repeats them under every recipe)."""
    single = df[_is_single(df)]
    key = "run" if "run" in single else "seed"
    return single.drop_duplicates(subset=[c for c in (key, "member", "layer") if c in single])


def draw_lines_vs_n(ax: Any, df: pd.DataFrame, metric: str, variants: Optional[Sequence[str]] = None,
                    scale: float = 1.0, confidence: float = 0.95, show_runs: bool = True,
                    levels: bool = True, all_ns: Optional[Sequence[Any]] = None, **style: Any) -> None:
    """Mean of ``metric`` over seeds vs N, one line per recipe with its t band and single runs; the single model
    (rows marked ``single_model``) is drawn once, in grey at N = 1 with its own interval, and each recipe's
    line starts from it without a marker of its own there (docs/method.md §9: every curve starts at 1x).

    With ``levels``, a recipe measured at N = 1 only while the figure (``all_ns``, default the N of ``df``)
    has other N is drawn as a level across the axis (:func:`draw_level`)."""
    single = _single_rows(df)
    own = df[~_is_single(df)]
    single_stats = mean_ci(single[metric].to_numpy(float) * scale, confidence) if len(single) else None
    from_single = set(df.loc[_is_single(df), "variant"])
    all_ns = list(df["n"]) if all_ns is None else list(all_ns)
    for i, variant in enumerate(ordered_variants(own, variants)):
        sub = own[own["variant"] == variant]
        st = variant_style(variant, i)
        ns = np.array(sorted(sub["n"].unique()), dtype=float)
        stats = np.array([mean_ci(sub.loc[sub["n"] == n, metric].to_numpy(float) * scale, confidence)
                          for n in ns]).reshape(-1, 4)
        if levels and only_at_one(sub, all_ns):
            draw_level(ax, stats[0, 0], stats[0, 2], stats[0, 3], st, variant, **style)
            if show_runs:
                ax.scatter(sub["n"].to_numpy(float), sub[metric].to_numpy(float) * scale, s=6, color=st["color"],
                           alpha=0.35, linewidths=0, label="_nolegend_")
            continue
        xs, ys, marks = ns, stats[:, 0], list(range(len(ns)))
        if single_stats is not None and variant in from_single and 1 not in ns:
            xs, ys, marks = np.r_[1.0, ns], np.r_[single_stats[0], stats[:, 0]], list(range(1, len(ns) + 1))
        ax.plot(xs, ys, label=variant, color=st["color"], marker=st["marker"], markevery=marks,
                **{**line_look(st), **style})
        confidence_band(ax, ns, stats[:, 2], stats[:, 3], st["color"])
        if show_runs:
            ax.scatter(sub["n"].to_numpy(float), sub[metric].to_numpy(float) * scale, s=6, color=st["color"],
                       alpha=0.35, linewidths=0, label="_nolegend_")
    if single_stats is not None:
        st = variant_style(SINGLE_LABEL)
        mean, _, lo, hi = single_stats
        yerr = None if np.isnan(lo) else [[mean - lo], [hi - mean]]
        ax.errorbar([1.0], [mean], yerr=yerr, color=st["color"], marker=st["marker"], markersize=5, capsize=2,
                    linestyle="none", label=SINGLE_LABEL, zorder=4)
        if show_runs:
            ax.scatter(single["n"].to_numpy(float), single[metric].to_numpy(float) * scale, s=6,
                       color=st["color"], alpha=0.35, linewidths=0, label="_nolegend_")


def plot_metric_vs_n(df: pd.DataFrame, metric: str, ax: Any = None, variants: Optional[Sequence[str]] = None,
                     scale: float = 1.0, ylabel: Optional[str] = None, confidence: float = 0.95,
                     show_runs: bool = True, legend: bool = True, title: Optional[str] = None,
                     reference: Optional[float] = None, levels: bool = True, **style: Any) -> Tuple[Any, Any]:
    """Mean of ``metric`` over seeds vs N, one line per recipe, with a t confidence band and the single runs
    (:func:`draw_lines_vs_n`: the single model drawn once).

    Args:
        df: one row per run with columns ``variant``, ``n`` and ``metric`` (and ``single_model``).
        metric: the column to draw.
        ax: axes to draw on (default: a new single-column figure).
        variants: recipes to draw, in this order (default: all present, in the canonical order).
        scale: multiply values by this (100 for AUC in percent).
        ylabel: y-axis label (default: the metric name).
        confidence: level of the band.
        show_runs: also draw every run as a faint point.
        legend: draw a legend.
        title: axes title (drawn inside the figure style, like every other text).
        reference: draw a dotted horizontal line at this value (after ``scale``), e.g. 0 for a gap.
        levels: draw a recipe measured at N = 1 only as a level across the N axis (:func:`draw_level`).
        **style: passed to ``ax.plot`` for every line.
    """
    own = ax is None
    with style_context(), variant_styles(ordered_variants(df)):
        fig, ax = new_axes(ax)
        draw_lines_vs_n(ax, df, metric, variants, scale, confidence, show_runs, levels=levels, **style)
        _n_axis(ax, df["n"])
        ax.set_ylabel(ylabel or metric)
        if reference is not None:
            ax.axhline(reference, color="0.5", linewidth=0.6, linestyle=":")
        if title:
            ax.set_title(title)
        if legend:
            place_legend(ax, own)
    return fig, ax


def draw_differences(ax: Any, table: pd.DataFrame, variants: Optional[Sequence[str]] = None,
                     ylabel: str = "", title: str = "") -> None:
    """Paired differences (``estimate``, ``ci_low``, ``ci_high`` per ``variant`` and ``n``, from
    :func:`collapse_lab.results.tables.difference_table`) as points with interval bars joined per recipe,
    recipes offset side by side at each N, and a dotted line at 0."""
    order = ordered_variants(table, variants) if len(table) else []
    ns = sorted(int(n) for n in table["n"].unique()) if len(table) else []
    width = 0.06 * max(1.0, (ns[-1] - ns[0]) / 4) if ns else 0.0
    for i, variant in enumerate(order):
        sub = table[table["variant"] == variant].sort_values("n")
        st = variant_style(variant, i)
        x = sub["n"].to_numpy(float) + (i - (len(order) - 1) / 2) * width
        est = sub["estimate"].to_numpy(float)
        lo, hi = sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float)
        yerr = np.vstack([np.where(np.isfinite(lo), est - lo, 0.0), np.where(np.isfinite(hi), hi - est, 0.0)])
        ax.errorbar(x, est, yerr=yerr, color=st["color"], marker=st["marker"], markersize=3.5, capsize=1.5,
                    linewidth=0.9, label=variant, **line_look(st))
    ax.axhline(0.0, color="0.5", linewidth=0.6, linestyle=":")
    if ns:
        ax.set_xticks(ns)
    ax.set_xlabel("number of sub-networks N")
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def _with_differences(df: pd.DataFrame, metric: str, what: str, draw: Any, baselines: Sequence[str],
                      variants: Optional[Sequence[str]], confidence: float,
                      handles: Optional[Sequence[Any]] = None) -> Tuple[Any, Any]:
    """``draw(ax)`` (the absolute figure) plus one panel of paired differences per baseline that has any (a
    sweep without vanilla-mean, e.g. of student mixes, has none: no blank panel is drawn), one legend."""
    from collapse_lab.results.tables import difference_table

    diffs = [(f"vs {baseline} (paired by seed)",
              difference_table(df, metric, baseline, scale=100.0, confidence=confidence)) for baseline in baselines]
    return with_difference_panels(draw, diffs, f"Δ {what} (AUC points)", variants, handles)


def with_difference_panels(draw: Any, diffs: Sequence[Tuple[str, pd.DataFrame]], ylabel: str,
                           variants: Optional[Sequence[str]] = None,
                           handles: Optional[Sequence[Any]] = None) -> Tuple[Any, Any]:
    """A new figure: ``draw(ax)`` (the absolute panel) and, right of it, one panel per ``(title, table)`` of paired
    differences (:func:`draw_differences`) that has a finite estimate (no blank panel), one legend beside them
    (``handles``, default the absolute panel's). Call inside :func:`style_context`. Returns the axes array."""
    diffs = [(title, table) for title, table in diffs
             if np.isfinite(pd.to_numeric(table["estimate"], errors="coerce")).any()]
    if diffs:
        fig, axes = new_axes(None, ncols=1 + len(diffs), figsize=(2.9 * (1 + len(diffs)), 2.7))
    else:  # the absolute panel alone, wide enough for its title
        fig, axis = new_axes(None, figsize=(4.0, 2.7))
        axes = np.array([axis], dtype=object)
    draw(axes[0])
    for axis, (title, table) in zip(axes[1:], diffs, strict=True):
        draw_differences(axis, table, variants, ylabel=ylabel, title=title)
    if axes[0].get_legend() is not None:
        axes[0].get_legend().remove()
    place_legend(axes[-1], True, handles=handles if handles is not None else axes[0].get_legend_handles_labels()[0],
                 max_inside=0)
    return fig, axes


def plot_ensemble_auc(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                      differences: bool = False, confidence: float = 0.95, **style: Any) -> Tuple[Any, Any]:
    """Figure 1 (paper Figs. 2a/4a/6a/8a): test AUC (%) of the fused ensemble vs N per recipe.

    With ``differences`` (and no ``ax``) two more panels show each recipe minus the single model and minus
    vanilla-mean at the same N, paired over seeds (t interval of the differences): where the absolute curves of
    KD, DML and KDEF overlap, the paired differences still separate them. Returns the axes array then.
    """
    def draw(axis: Any) -> Tuple[Any, Any]:
        return plot_metric_vs_n(df, "ensemble_auc", ax=axis, variants=variants, scale=100.0,
                                ylabel="ensemble test AUC (%)", title="Ensemble AUC vs number of sub-networks",
                                confidence=confidence, **style)

    if differences and ax is None:
        with style_context():
            with variant_styles(ordered_variants(df)):
                return _with_differences(df, "ensemble_auc", "ensemble AUC", draw, DIFFERENCE_BASELINES,
                                         variants, confidence)
    return draw(ax)


def plot_gap(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
             differences: bool = False, confidence: float = 0.95, **style: Any) -> Tuple[Any, Any]:
    """Figure 3 (paper Figs. 5, 8c): ensemble AUC − best student AUC (AUC points) vs N per recipe.

    With ``differences`` (and no ``ax``) a second panel shows each recipe's gap minus vanilla-mean's at the same
    N, paired over seeds (the single model's gap is 0 by definition, so its difference panel would repeat the
    first one).
    """
    def draw(axis: Any) -> Tuple[Any, Any]:
        return plot_metric_vs_n(df, "gap", ax=axis, variants=variants, scale=100.0,
                                ylabel="ensemble − best student AUC (points)", reference=0.0,
                                title="Discrepancy between ensemble and best student", confidence=confidence,
                                levels=False, **style)

    if differences and ax is None:
        with style_context():
            with variant_styles(ordered_variants(df)):
                return _with_differences(df, "gap", "ensemble − best student", draw, DIFFERENCE_BASELINES[1:],
                                         variants, confidence)
    return draw(ax)


def _best_worst(students: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("variant", "run", "n", "seed", "single_model") if k in students]
    per_run = students.groupby(keys, sort=False)["test_auc"].agg(["max", "min"])
    return per_run.reset_index()


def plot_student_auc(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                     confidence: float = 0.95, differences: bool = False, **style: Any) -> Tuple[Any, Any]:
    """Figure 2 (paper Figs. 2b/4b/6b/8b): best (solid) and worst (dashed) student test AUC (%) vs N.

    Best/worst are taken within each run, then averaged over seeds (t band on the best curve); every student of
    every run is drawn as a point, offset horizontally per recipe, so the variance stays visible. A recipe
    measured at N = 1 only (one student: best = worst) is drawn as a level across the N axis. The legend lists
    each recipe once and keys the two line styles.

    With ``differences`` (and no ``ax``) two more panels show the best student of each recipe minus the single
    model and minus vanilla-mean's best student at the same N, paired over seeds.

    Args:
        df: one row per student: ``run``, ``variant``, ``n``, ``test_auc`` (``seed`` for the differences).
    """
    if differences and ax is None:
        best = _best_worst(df).rename(columns={"max": "best_student_auc"})
        with style_context(), variant_styles(ordered_variants(df)):
            own_rows = df[~_is_single(df)]
            order = ordered_variants(own_rows, variants)
            levels = [v for v in order if only_at_one(own_rows[own_rows["variant"] == v], df["n"])]
            handles = student_legend(order, bool(_is_single(df).any()), levels)
            return _with_differences(best, "best_student_auc", "best student AUC",
                                     lambda axis: plot_student_auc(df, ax=axis, variants=variants,
                                                                   confidence=confidence, **style),
                                     DIFFERENCE_BASELINES, variants, confidence, handles=handles)
    own = ax is None
    with style_context(), variant_styles(ordered_variants(df)):
        fig, ax = new_axes(ax)
        order = ordered_variants(df[~_is_single(df)], variants)
        per_run = _best_worst(df)
        is_single = _is_single(per_run)
        single_runs = per_run[is_single].drop_duplicates(subset="run")
        own_runs = per_run[~is_single]
        single_points = _single_rows(df)
        own_points = df[~_is_single(df)]
        width = 0.08 * max(1.0, float(np.ptp(df["n"].to_numpy(float))) / 4)
        single_best = single_runs["max"].mean() * 100 if len(single_runs) else np.nan
        single_worst = single_runs["min"].mean() * 100 if len(single_runs) else np.nan
        levels = []
        for i, variant in enumerate(order):
            st = variant_style(variant, i)
            sub = own_runs[own_runs["variant"] == variant]
            ns = np.array(sorted(sub["n"].unique()), dtype=float)
            best = np.array([mean_ci(sub.loc[sub["n"] == n, "max"].to_numpy(float) * 100, confidence)
                             for n in ns]).reshape(-1, 4)
            worst = np.array([sub.loc[sub["n"] == n, "min"].mean() * 100 for n in ns])
            points = own_points[own_points["variant"] == variant]
            offset = (i - (len(order) - 1) / 2) * width
            ax.scatter(points["n"].to_numpy(float) + offset, points["test_auc"].to_numpy(float) * 100, s=5,
                       color=st["color"], alpha=0.4, linewidths=0, label="_nolegend_")
            if only_at_one(sub, df["n"]):  # one student per run: best = worst, a level to read the others by
                levels.append(variant)
                draw_level(ax, best[0, 0], best[0, 2], best[0, 3], st, f"{variant} best", **style)
                continue
            xs, ys_best, ys_worst, marks = ns, best[:, 0], worst, list(range(len(ns)))
            if len(single_runs) and 1 not in ns and variant in set(per_run.loc[is_single, "variant"]):
                xs, marks = np.r_[1.0, ns], list(range(1, len(ns) + 1))
                ys_best, ys_worst = np.r_[single_best, best[:, 0]], np.r_[single_worst, worst]
            ax.plot(xs, ys_best, color=st["color"], marker=st["marker"], markevery=marks, label=f"{variant} best",
                    **style)
            ax.plot(xs, ys_worst, color=st["color"], marker=st["marker"], markevery=marks, linestyle="--",
                    markerfacecolor="white", label=f"{variant} worst", **style)
            confidence_band(ax, ns, best[:, 2], best[:, 3], st["color"])
        if len(single_runs):
            st = variant_style(SINGLE_LABEL)
            mean, _, lo, hi = mean_ci(single_runs["max"].to_numpy(float) * 100, confidence)
            yerr = None if np.isnan(lo) else [[mean - lo], [hi - mean]]
            ax.errorbar([1.0], [mean], yerr=yerr, color=st["color"], marker=st["marker"], markersize=5, capsize=2,
                        linestyle="none", label=SINGLE_LABEL, zorder=4)
            ax.scatter(single_points["n"].to_numpy(float), single_points["test_auc"].to_numpy(float) * 100, s=5,
                       color=st["color"], alpha=0.4, linewidths=0, label="_nolegend_")
        _n_axis(ax, df["n"])
        ax.set_ylabel("student test AUC (%)")
        ax.set_title("Best and worst sub-network")
        place_legend(ax, own, handles=student_legend(order, bool(len(single_runs)), levels))
    return fig, ax


def plot_student_variance(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                          **style: Any) -> Tuple[Any, Any]:
    """Figure 4: the distribution of student test AUC (%) at each N per recipe (box + every student).

    Boxes show the quartiles and whiskers 1.5 IQR (``seaborn.boxplot``, recipes side by side at each N); every
    student of every seed is drawn on top (``seaborn.stripplot``, jitter from a fixed seed, so the figure is
    reproducible).

    Args:
        df: one row per student: ``variant``, ``n``, ``test_auc`` (pooled over seeds).
        **style: passed to ``seaborn.boxplot``.
    """
    own = ax is None
    with style_context(), variant_styles(ordered_variants(df)):
        fig, ax = new_axes(ax)
        single = _single_rows(df)
        own_rows = df[~_is_single(df)]
        order = ordered_variants(own_rows, variants)
        ns = sorted(int(n) for n in df["n"].unique())
        data = own_rows[own_rows["variant"].isin(order)].assign(auc=lambda d: d["test_auc"].astype(float) * 100,
                                                                n=lambda d: d["n"].astype(int))
        palette = {variant: variant_style(variant, i)["color"] for i, variant in enumerate(order)}
        hatches = shared_colour_hatches(palette)  # KDEF's controls share KDEF's colour and boxes have no marker
        present = {n: [v for v in order if ((data["n"] == n) & (data["variant"] == v)).any()] for n in ns}
        if any(present[n] and present[n] != order for n in ns):  # recipes at some N only: no empty slots
            sparse_boxes(ax, data, single, ns, present, palette, hatches)
        else:
            _dodged_boxes(ax, data, single, ns, order, palette, hatches, **style)
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_xlabel("number of sub-networks N")
        ax.set_ylabel("student test AUC (%)")
        ax.set_title("Spread of student AUC")
        place_legend(ax, own, handles=box_legend(order, palette, hatches, bool(len(single)) and 1 in ns))
    return fig, ax


def _dodged_boxes(ax: Any, data: pd.DataFrame, single: pd.DataFrame, ns: Sequence[int], order: Sequence[str],
                  palette: Mapping[str, str], hatches: Mapping[str, str], **style: Any) -> None:
    """Figure 4 with every recipe at every N > 1: seaborn's dodged boxes and strip points, one slot per recipe,
    and the single model once, in its own grey box at N = 1."""
    import seaborn as sns

    common = {"data": data, "x": "n", "y": "auc", "hue": "variant", "order": ns, "hue_order": order,
              "palette": palette, "ax": ax}
    sns.boxplot(**common, showfliers=False, dodge=True, width=0.8, boxprops={"alpha": 0.45}, **style)
    hatch_dodged_boxes(ax, [hatches[v] for v in order])
    saved = np.random.get_state()  # stripplot's jitter draws from numpy's global generator: fix, then restore
    np.random.seed(0)
    try:
        sns.stripplot(**common, dodge=True, size=2.5, linewidth=0, jitter=0.25, legend=False, zorder=3)
    finally:
        np.random.set_state(saved)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if len(single) and 1 in ns:
        grey = variant_style(SINGLE_LABEL)["color"]
        values = single["test_auc"].to_numpy(float) * 100
        ax.boxplot(values, positions=[list(ns).index(1)], widths=0.3, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": grey, "alpha": 0.45, "edgecolor": grey},
                   medianprops={"color": "black"}, whiskerprops={"color": grey}, capprops={"color": grey})
        jitter = np.random.default_rng(0).uniform(-0.1, 0.1, values.size)
        ax.scatter(list(ns).index(1) + jitter, values, s=6, color=grey, linewidths=0, zorder=3)
