"""Scaling figures: ensemble AUC, student AUC, ensemble − best-student gap and student variance vs N.

These reproduce docs/method.md §9 Figs. 2(a)/4(a)/6(a)/8(a) (ensemble AUC vs N), 2(b)/4(b)/6(b)/8(b) (best and worst
sub-network), 5 and 8(c) (gap), with means over seeds and Student-t 95% bands (:func:`collapse_lab.results.stats
.mean_ci`). Inputs are tidy DataFrames from :mod:`collapse_lab.results.tables`:

* run level (one row per run): ``variant``, ``n``, ``seed`` and the metric column;
* student level (one row per student of a run): ``run``, ``variant``, ``n``, ``seed``, ``member``, ``test_auc``.

AUC values are fractions in the tables and drawn in percent (``scale=100``), as in the paper.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from collapse_lab.plotting.style import new_axes, place_legend, style_context, variant_style
from collapse_lab.results.collect import VARIANT_ORDER
from collapse_lab.results.stats import mean_ci

__all__ = ["plot_metric_vs_n", "plot_ensemble_auc", "plot_gap", "plot_student_auc", "plot_student_variance",
           "ordered_variants"]


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


def _n_axis(ax: Any, ns: Sequence[int]) -> None:
    ax.set_xticks(sorted(set(int(n) for n in ns)))
    ax.set_xlabel("number of sub-networks N")


def plot_metric_vs_n(df: pd.DataFrame, metric: str, ax: Any = None, variants: Optional[Sequence[str]] = None,
                     scale: float = 1.0, ylabel: Optional[str] = None, confidence: float = 0.95,
                     show_runs: bool = True, legend: bool = True, title: Optional[str] = None,
                     reference: Optional[float] = None, **style: Any) -> Tuple[Any, Any]:
    """Mean of ``metric`` over seeds vs N, one line per recipe, with a t confidence band and the single runs.

    Args:
        df: one row per run with columns ``variant``, ``n`` and ``metric``.
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
        **style: passed to ``ax.plot`` for every line.
    """
    own = ax is None
    with style_context():
        fig, ax = new_axes(ax)
        for i, variant in enumerate(ordered_variants(df, variants)):
            sub = df[df["variant"] == variant]
            st = variant_style(variant, i)
            ns = np.array(sorted(sub["n"].unique()), dtype=float)
            stats = np.array([mean_ci(sub.loc[sub["n"] == n, metric].to_numpy(float) * scale, confidence)
                              for n in ns]).reshape(-1, 4)
            ax.plot(ns, stats[:, 0], label=variant, color=st["color"], marker=st["marker"], **style)
            confidence_band(ax, ns, stats[:, 2], stats[:, 3], st["color"])
            if show_runs:
                ax.scatter(sub["n"].to_numpy(float), sub[metric].to_numpy(float) * scale, s=6, color=st["color"],
                           alpha=0.35, linewidths=0, label="_nolegend_")
        _n_axis(ax, df["n"])
        ax.set_ylabel(ylabel or metric)
        if reference is not None:
            ax.axhline(reference, color="0.5", linewidth=0.6, linestyle=":")
        if title:
            ax.set_title(title)
        if legend:
            place_legend(ax, own)
    return fig, ax


def plot_ensemble_auc(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                      **style: Any) -> Tuple[Any, Any]:
    """Figure 1 (paper Figs. 2a/4a/6a/8a): test AUC (%) of the fused ensemble vs N per recipe."""
    fig, ax = plot_metric_vs_n(df, "ensemble_auc", ax=ax, variants=variants, scale=100.0,
                               ylabel="ensemble test AUC (%)", title="Ensemble AUC vs number of sub-networks",
                               **style)
    return fig, ax


def plot_gap(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
             **style: Any) -> Tuple[Any, Any]:
    """Figure 3 (paper Figs. 5, 8c): ensemble AUC − best student AUC (AUC points) vs N per recipe."""
    fig, ax = plot_metric_vs_n(df, "gap", ax=ax, variants=variants, scale=100.0,
                               ylabel="ensemble − best student AUC (points)", reference=0.0,
                               title="Discrepancy between ensemble and best student", **style)
    return fig, ax


def _best_worst(students: pd.DataFrame) -> pd.DataFrame:
    per_run = students.groupby(["variant", "run", "n"], sort=False)["test_auc"].agg(["max", "min"])
    return per_run.reset_index()


def plot_student_auc(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                     confidence: float = 0.95, **style: Any) -> Tuple[Any, Any]:
    """Figure 2 (paper Figs. 2b/4b/6b/8b): best (solid) and worst (dashed) student test AUC (%) vs N.

    Best/worst are taken within each run, then averaged over seeds (t band on the best curve); every student of
    every run is drawn as a point, offset horizontally per recipe, so the variance stays visible.

    Args:
        df: one row per student: ``run``, ``variant``, ``n``, ``test_auc``.
    """
    own = ax is None
    with style_context():
        fig, ax = new_axes(ax)
        order = ordered_variants(df, variants)
        per_run = _best_worst(df)
        width = 0.08 * max(1.0, float(np.ptp(df["n"].to_numpy(float))) / 4)
        for i, variant in enumerate(order):
            st = variant_style(variant, i)
            sub = per_run[per_run["variant"] == variant]
            ns = np.array(sorted(sub["n"].unique()), dtype=float)
            best = np.array([mean_ci(sub.loc[sub["n"] == n, "max"].to_numpy(float) * 100, confidence)
                             for n in ns]).reshape(-1, 4)
            worst = np.array([sub.loc[sub["n"] == n, "min"].mean() * 100 for n in ns])
            ax.plot(ns, best[:, 0], color=st["color"], marker=st["marker"], label=f"{variant} best", **style)
            ax.plot(ns, worst, color=st["color"], marker=st["marker"], linestyle="--", markerfacecolor="white",
                    label=f"{variant} worst", **style)
            confidence_band(ax, ns, best[:, 2], best[:, 3], st["color"])
            points = df[df["variant"] == variant]
            offset = (i - (len(order) - 1) / 2) * width
            ax.scatter(points["n"].to_numpy(float) + offset, points["test_auc"].to_numpy(float) * 100, s=5,
                       color=st["color"], alpha=0.4, linewidths=0, label="_nolegend_")
        _n_axis(ax, df["n"])
        ax.set_ylabel("student test AUC (%)")
        ax.set_title("Best and worst sub-network")
        place_legend(ax, own, ncols=2 if len(order) > 2 else 1)
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
    import seaborn as sns

    own = ax is None
    with style_context():
        fig, ax = new_axes(ax)
        order = ordered_variants(df, variants)
        ns = sorted(int(n) for n in df["n"].unique())
        data = df[df["variant"].isin(order)].assign(auc=lambda d: d["test_auc"].astype(float) * 100,
                                                    n=lambda d: d["n"].astype(int))
        palette = {variant: variant_style(variant, i)["color"] for i, variant in enumerate(order)}
        common = {"data": data, "x": "n", "y": "auc", "hue": "variant", "order": ns, "hue_order": order,
                  "palette": palette, "ax": ax}
        sns.boxplot(**common, showfliers=False, dodge=True, width=0.8, boxprops={"alpha": 0.45},
                    **style)
        saved = np.random.get_state()  # stripplot's jitter draws from numpy's global generator: fix, then restore
        np.random.seed(0)
        try:
            sns.stripplot(**common, dodge=True, size=2.5, linewidth=0, jitter=0.25, legend=False, zorder=3)
        finally:
            np.random.set_state(saved)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        handles = [Patch(facecolor=palette[v], edgecolor=palette[v], alpha=0.45, label=v) for v in order]
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set_xlabel("number of sub-networks N")
        ax.set_ylabel("student test AUC (%)")
        ax.set_title("Spread of student AUC")
        place_legend(ax, own, handles=handles)
    return fig, ax
