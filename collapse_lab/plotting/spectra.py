"""Collapse figures: singular-value heat maps with knowledge abundance, KA vs N, normalised spectra.

* :func:`plot_sv_heatmaps` — KDEF (arXiv 2411.16122) Figs. 3 and 9: for each model (panel), one row per hidden
  layer with its singular values sorted in descending order, the colour clipped to [0, τ], a dashed line after
  the last σ > τ and KA(W, τ) = #{σ_i > τ}/#{σ_i > 0} written on the row (Eqs. 3–4, τ = 4); or the same with a
  scale-aware cut (the Marchenko–Pastur bulk edge, or τ·σ_max), named in the figure title.
* :func:`plot_ka_vs_n` — KA of each hidden layer of the best student vs N per recipe (claim C3).
* :func:`plot_normalized_spectra` — σ_i/σ_1 on a log scale for embeddings and activations per recipe; the area
  under such a curve is the information abundance Σσ/σ_max (docs/metrics.md §1.1).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.plotting.degradation import draw_lines_vs_n, ordered_variants
from collapse_lab.plotting.style import new_axes, place_legend, style_context, variant_style, variant_styles

__all__ = ["plot_sv_heatmaps", "plot_layer_measure_vs_n", "plot_ka_vs_n", "plot_erank_ratio_vs_n",
           "plot_normalized_spectra"]

#: most layer panels in one row of figures 6 and 10 (more layers wrap onto further rows)
MAX_PANELS_PER_ROW = 4


def plot_sv_heatmaps(df: pd.DataFrame, tau: Optional[float] = None, ax: Any = None, cmap: str = "cividis",
                     threshold: str = "abs", **style: Any) -> Tuple[Any, Any]:
    """Singular-value heat maps, one panel per model, one row per hidden layer.

    Args:
        df: tidy rows ``panel`` (model label, panels in order of appearance), ``layer`` (1-based), ``index``
            (0-based position in the descending order), ``sigma``, ``ka`` (KA of that layer) and, for the scale-aware
            thresholds, ``threshold`` (the layer's absolute σ cut, :func:`collapse_lab.results.tables.heatmap_table`).
        tau: the threshold parameter (None = the kind's default: 4 for ``abs``).
        ax: a sequence of one axes per panel (default: a new double-column figure).
        cmap: a perceptually uniform, colour-blind-safe colour map.
        threshold: ``abs`` — colour = σ clipped to [0, τ] (KDEF Figs. 3, 9); ``mp`` / ``rel`` — colour = σ over
            the layer's own cut, clipped to [0, 1], so one scale serves layers whose cuts differ.
        **style: passed to ``imshow``.
    """
    from collapse_lab.spectral.functional import DEFAULT_KA_TAU, threshold_label

    tau = DEFAULT_KA_TAU[threshold] if tau is None else tau
    absolute = threshold == "abs"
    panels = list(dict.fromkeys(df["panel"]))
    layers = sorted(df["layer"].unique())
    width = int(df["index"].max()) + 1
    vmax = tau if absolute else 1.0
    with style_context():
        fig, axes = new_axes(ax, ncols=len(panels), figsize=(2.4 * len(panels) + 0.6, 0.45 * len(layers) + 1.0),
                             sharey=True) if ax is None else new_axes(ax, ncols=len(panels))
        axes = np.atleast_1d(axes)
        image = None
        for axis, panel in zip(axes, panels, strict=True):
            sub = df[df["panel"] == panel]
            grid = np.full((len(layers), width), np.nan)  # (L, max m): layers of different widths pad with NaN
            for r, layer in enumerate(layers):
                rows = sub[sub["layer"] == layer].sort_values("index")
                sigma = rows["sigma"].to_numpy(float)
                cut = tau if absolute else (float(rows["threshold"].iloc[0]) if len(rows) else np.nan)
                grid[r, rows["index"].to_numpy(int)] = sigma if absolute else sigma / cut
                count = int((sigma > cut).sum())
                if count:
                    axis.plot([count - 0.5, count - 0.5], [r - 0.5, r + 0.5], color="#D55E00", linestyle="--",
                              linewidth=1.5)
                ka = rows["ka"].iloc[0] if len(rows) else np.nan
                axis.text(width - 0.5, r, f"KA {100 * ka:.1f}%", ha="right", va="center", fontsize=6.5,
                          color="white", bbox={"facecolor": "black", "alpha": 0.45, "pad": 1, "linewidth": 0})
            image = axis.imshow(np.clip(grid, 0, vmax), aspect="auto", vmin=0.0, vmax=vmax, cmap=cmap,
                                interpolation="nearest", **style)
            axis.set_title(str(panel))
            axis.set_yticks(range(len(layers)), [f"layer {int(v)}" for v in layers])
            axis.set_xlabel("singular value index (descending)")
            axis.grid(False)
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.01)
            cut_name = threshold_label(threshold, tau).split("> ", 1)[1]
            bar.set_label(f"σ (clipped to [0, {tau:g}])" if absolute else f"σ / ({cut_name}), clipped to [0, 1]")
        if ax is None:
            fig.suptitle(f"KA = #{{{threshold_label(threshold, tau)}}} / #{{σ > 0}}", fontsize="medium")
    return fig, axes


def plot_layer_measure_vs_n(df: pd.DataFrame, column: str, ylabel: str, ax: Any = None,
                            variants: Optional[Sequence[str]] = None, confidence: float = 0.95, scale: float = 1.0,
                            reference: Optional[float] = None, min_span: float = 0.0,
                            **style: Any) -> Tuple[Any, Any]:
    """A per-layer measure of the best student vs N, one panel per layer, one line per recipe (mean over seeds,
    t band; the single model once, :func:`~collapse_lab.plotting.degradation.draw_lines_vs_n`).

    Args:
        df: rows ``variant``, ``n``, ``layer`` (1-based) and ``column`` (one per run and layer).
        column: the measure to draw.
        ylabel: label of the y axis (first panel).
        ax: a sequence of one axes per layer (default: a new figure).
        scale: multiply values by this (100 for KA in percent).
        reference: a dotted horizontal line at this value (e.g. 1 = a Gaussian matrix's spread).
        min_span: the y axis spans at least this much around ``reference`` (0 = matplotlib's limits).
    """
    finite = np.isfinite(pd.to_numeric(df[column], errors="coerce").to_numpy(float))
    layers = sorted(df.loc[finite, "layer"].unique()) or sorted(df["layer"].unique())  # no panel without data
    own = ax is None
    with style_context(), variant_styles(ordered_variants(df)):
        cols = min(len(layers), MAX_PANELS_PER_ROW)  # many layers (deep students): rows of panels, not one strip
        rows = int(np.ceil(len(layers) / cols))
        fig, axes = new_axes(ax, ncols=cols, nrows=rows, figsize=(2.4 * cols, 2.4 * rows), sharey=True) \
            if ax is None else new_axes(ax, ncols=len(layers))
        axes = np.atleast_1d(axes)
        for axis in axes[len(layers):]:
            axis.set_visible(False)
        axes = axes[:len(layers)]
        for axis, layer in zip(axes, layers, strict=True):
            draw_lines_vs_n(axis, df[df["layer"] == layer], column, ordered_variants(df, variants), scale,
                            confidence, show_runs=False, all_ns=df["n"], **style)
            if reference is not None:
                axis.axhline(reference, color="0.5", linewidth=0.6, linestyle=":")
                if min_span:  # ratios within round-off of the reference stay flat instead of filling the axis
                    low, high = axis.get_ylim()
                    axis.set_ylim(min(low, reference - min_span / 2), max(high, reference + min_span / 2))
            axis.set_title(f"layer {int(layer)}")
            axis.set_xticks(sorted(set(int(n) for n in df["n"])))
            axis.set_xlabel("N")
        for axis in axes[::cols]:
            axis.set_ylabel(ylabel)
        place_legend(axes[0], own)
    return fig, axes


def plot_ka_vs_n(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                 confidence: float = 0.95, tau: Optional[float] = None, threshold: str = "abs",
                 **style: Any) -> Tuple[Any, Any]:
    """Figure 6: knowledge abundance KA(W) (%) of each hidden layer of the best student vs N (claim C3).

    Args:
        df: rows ``variant``, ``n``, ``layer`` (1-based), ``ka`` (one per run and layer).
        ax: a sequence of one axes per layer (default: a new figure).
        tau, threshold: the threshold the KA values were computed with (for the axis label): ``abs`` σ > τ
            (default 4), ``mp`` σ > τ × MP bulk edge, ``rel`` σ > τ·σ_max.
    """
    from collapse_lab.spectral.functional import threshold_label

    return plot_layer_measure_vs_n(df, "ka", f"KA ({threshold_label(threshold, tau)}) of best student (%)", ax=ax,
                                   variants=variants, confidence=confidence, scale=100.0, **style)


def plot_erank_ratio_vs_n(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                          confidence: float = 0.95, **style: Any) -> Tuple[Any, Any]:
    """Figure 10: effective rank of each hidden weight of the best student over that of a same-shape Gaussian
    matrix, vs N — the scale-free reading of C3 (1 = as spread out as at random; below 1 = collapsed onto fewer
    directions). Unlike KA(W, τ) it does not depend on the weights' scale, so it compares settings on small
    data where every σ stays below τ.

    Args:
        df: rows ``variant``, ``n``, ``layer`` (1-based), ``erank_ratio``.
    """
    return plot_layer_measure_vs_n(df, "erank_ratio", "effective rank / Gaussian (best student)", ax=ax,
                                   variants=variants, confidence=confidence, reference=1.0, min_span=0.1, **style)


def plot_normalized_spectra(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                            **style: Any) -> Tuple[Any, Any]:
    """σ_i/σ_1 (log scale) vs i, one panel per kind (``embeddings``, ``activations``), one line per recipe.

    Args:
        df: rows ``variant``, ``kind``, ``run``, ``index`` (0-based), ``sigma_norm`` and optionally ``resolved``;
            several runs of a recipe are averaged per index. Indices that are not ``resolved`` in every run
            (σ at the numerical floor: round-off, not spectrum) are left out and the panel says how many.
        ax: a sequence of one axes per kind (default: a new figure).
    """
    kinds = list(dict.fromkeys(df["kind"]))
    own = ax is None
    with style_context():
        fig, axes = new_axes(ax, ncols=len(kinds), figsize=(3.0 * len(kinds), 2.5)) if ax is None \
            else new_axes(ax, ncols=len(kinds))
        axes = np.atleast_1d(axes)
        for axis, kind in zip(axes, kinds, strict=True):
            sub_kind = df[df["kind"] == kind]
            hidden = 0
            for i, variant in enumerate(ordered_variants(df, variants)):
                sub = sub_kind[sub_kind["variant"] == variant]
                if sub.empty:
                    continue
                st = variant_style(variant, i)
                grouped = sub.groupby("index")
                curve = grouped["sigma_norm"].mean()
                keep = (curve > 0) & (grouped["resolved"].all() if "resolved" in sub else True)
                hidden = max(hidden, int((~keep).sum()))
                curve = curve[keep]
                axis.plot(curve.index.to_numpy() + 1, curve.to_numpy(), color=st["color"], label=variant, **style)
            if hidden:
                axis.text(0.98, 0.98, f"{hidden} σ at the numerical floor not drawn", transform=axis.transAxes,
                          ha="right", va="top", fontsize=6.5, color="0.35")
            axis.set_yscale("log")
            axis.set_xlabel("index i")
            axis.set_title(str(kind))
        axes[0].set_ylabel(r"$\sigma_i / \sigma_1$")
        place_legend(axes[0], own)
    return fig, axes
