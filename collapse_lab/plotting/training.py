"""Collapse over training and across depth: a scale-free metric vs optimizer step per recipe, and a layer × N map.

* :func:`plot_metric_over_training` — from each run's ``spectra_trace.csv`` (:mod:`collapse_lab.training.spectra`):
  a metric of the best student's hidden weights and of the shared embedding relative to same-shape Gaussian
  matrices of equal Frobenius norm (1 = random-like), per recipe at its largest N and for the single model, mean
  over seeds with a t band (docs/metrics.md §3; KDEF arXiv 2411.16122 §IV-A-2 reads KA at the end of training
  only).
* :func:`plot_collapse_map` — the mean over seeds of a per-layer ratio per recipe as a layer × N heat map, the
  embedding as the first row: where in depth and at which N the weights leave the random bulk.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.plotting.degradation import confidence_band, ordered_variants
from collapse_lab.plotting.style import new_axes, place_legend, style_context, variant_style
from collapse_lab.results.stats import mean_ci

__all__ = ["plot_metric_over_training", "plot_collapse_map", "METRIC_LABELS"]

#: readable names of the scale-free metrics of spectra_trace.csv / results.csv
METRIC_LABELS = {"effective_rank": "effective rank", "erank_ratio": "effective rank",
                 "information_abundance": "information abundance", "ia_ratio": "information abundance",
                 "stable_rank": "stable rank", "participation_ratio": "participation ratio",
                 "nuclear_ratio": "nuclear ratio", "rankme": "RankMe"}


def _matrices(df: pd.DataFrame) -> list:
    """``embedding`` first, then ``layer 1``, ``layer 2``, ... in numeric order."""
    names = set(df["matrix"])
    layers = sorted((m for m in names if m.startswith("layer ")), key=lambda m: int(m.split()[1]))
    return (["embedding"] if "embedding" in names else []) + layers + sorted(names - set(layers) - {"embedding"})


def plot_metric_over_training(df: pd.DataFrame, metric: str = "effective_rank", ratio: bool = True, ax: Any = None,
                              variants: Optional[Sequence[str]] = None, confidence: float = 0.95,
                              **style: Any) -> Tuple[Any, Any]:
    """One panel per matrix (embedding, hidden layer 1..L of the best student), one line per recipe: the mean
    over seeds of the metric at each recorded step with its t band (seeds of one setting record the same steps).

    Args:
        df: :func:`collapse_lab.results.tables.trace_table` rows ``variant, n, seed, run, step, matrix, value``.
        metric: the metric the values are (for the axis label).
        ratio: whether the values are ratios to a Gaussian (a dotted line at 1 then).
        ax: a sequence of one axes per matrix (default: a new figure).
        **style: passed to ``ax.plot``.
    """
    matrices = _matrices(df)
    own = ax is None
    with style_context():
        fig, axes = new_axes(ax, ncols=len(matrices), figsize=(2.5 * len(matrices), 2.6), sharey=True) \
            if ax is None else new_axes(ax, ncols=len(matrices))
        axes = np.atleast_1d(axes)
        for axis, matrix in zip(axes, matrices, strict=True):
            sub_matrix = df[df["matrix"] == matrix]
            for i, variant in enumerate(ordered_variants(df, variants)):
                sub = sub_matrix[sub_matrix["variant"] == variant]
                if sub.empty:
                    continue
                st = variant_style(variant, i)
                steps = np.array(sorted(sub["step"].unique()), dtype=float)
                stats = np.array([mean_ci(sub.loc[sub["step"] == s, "value"].to_numpy(float), confidence)
                                  for s in steps]).reshape(-1, 4)
                n = int(sub["n"].iloc[0])
                label = "single model" if variant == "single model" else f"{variant}, N = {n}"
                axis.plot(steps, stats[:, 0], color=st["color"], label=label, **style)
                confidence_band(axis, steps, stats[:, 2], stats[:, 3], st["color"])
            if ratio:
                axis.axhline(1.0, color="0.5", linewidth=0.6, linestyle=":")
            axis.set_title("shared embedding" if matrix == "embedding" else f"{matrix} (best student)")
            axis.set_xlabel("optimizer step")
        name = METRIC_LABELS.get(metric, metric)
        axes[0].set_ylabel(f"{name} / Gaussian" if ratio else name)
        place_legend(axes[-1], own, max_inside=0 if own else 4)
    return fig, axes


def plot_collapse_map(df: pd.DataFrame, measure: str = "erank_ratio", ax: Any = None,
                      variants: Optional[Sequence[str]] = None, cmap: str = "PuOr", min_range: float = 0.1,
                      **style: Any
                      ) -> Tuple[Any, Any]:
    """One heat map per recipe with a finite value (a recipe whose values are all missing gets no panel; with
    none, the axes are hidden): rows = the embedding (layer 0) and the hidden layers, columns = N, colour and
    number = the mean over seeds of the ratio to a Gaussian; one diverging colour scale for all panels (a
    colour-blind-safe ColorBrewer map), centred on 1 (random-like) and at least ±``min_range`` wide, so that
    ratios within round-off of 1 look neutral instead of filling the scale with noise.

    Args:
        df: :func:`collapse_lab.results.tables.collapse_map_table` rows ``variant, layer, n, value``.
        measure: the per-layer measure the values are (for the labels).
        ax: a sequence of one axes per recipe of ``df`` (default: a new figure); those left over are hidden.
        **style: passed to ``imshow``.
    """
    finite = df[np.isfinite(pd.to_numeric(df["value"], errors="coerce").to_numpy(float))]
    # a recipe without any finite value (its spectra not computed) gets no panel: no all-NaN map; with none
    # left the figure has no axes with data and is skipped (collapse_lab.plotting.figures, NO_DATA)
    order = ordered_variants(finite, variants)
    layers = sorted(int(v) for v in finite["layer"].unique())
    values = finite["value"].to_numpy(float)
    half = max(float(np.abs(values - 1.0).max()) if values.size else 0.0, min_range)
    vmin, vmax = 1.0 - half, 1.0 + half
    with style_context():
        cols = min(3, max(len(order), 1))
        rows = max(int(np.ceil(len(order) / cols)), 1)
        fig, axes = new_axes(ax, ncols=cols, nrows=rows, figsize=(2.3 * cols + 0.8, (0.32 * len(layers) + 0.9) * rows))\
            if ax is None else new_axes(ax, ncols=len(ordered_variants(df, variants)))  # one per recipe of df
        axes = np.atleast_1d(axes)
        image = None
        for axis, variant in zip(axes, order, strict=False):
            sub = finite[finite["variant"] == variant]
            # only the layers and N this recipe has (a backbone alone has N = 1 only, a mix N > 1 only, and
            # students differ in depth): no blank columns or rows
            own_layers = sorted(int(v) for v in sub["layer"].unique())
            own_ns = sorted(int(v) for v in sub["n"].unique())
            grid = np.full((len(own_layers), len(own_ns)), np.nan)
            for r in sub.itertuples(index=False):
                grid[own_layers.index(int(r.layer)), own_ns.index(int(r.n))] = r.value
            image = axis.imshow(grid, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                                **style)
            for (i, j), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    dark = abs(v - 1.0) > 0.6 * half  # the ends of the diverging map are dark
                    axis.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                              color="white" if dark else "black")
            axis.set_xticks(range(len(own_ns)), [str(n) for n in own_ns])
            axis.set_yticks(range(len(own_layers)), ["embedding" if v == 0 else f"layer {v}" for v in own_layers])
            axis.set_xlabel("N")
            # a long student mix (kdef@final+ecn+wide_deep) on two lines instead of over its neighbour's title
            axis.set_title(variant.replace("@", "\n@", 1) if len(variant) > 20 else variant)
            axis.grid(False)
        for axis in axes[len(order):]:
            axis.set_visible(False)
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.02)
            bar.set_label(f"{METRIC_LABELS.get(measure, measure)} / Gaussian (1 = random)")
    return fig, axes
