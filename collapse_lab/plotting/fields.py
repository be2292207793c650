"""Per-field information abundance against a same-shape random baseline (Guo et al., ICML 2024, Fig. 2 analogue).

Information abundance IA(E) = ‖σ‖₁/‖σ‖∞ of each field's raw embedding table E_f ∈ ℝ^{V_f×D} (docs/metrics.md §1.1).
Because IA is biased by the table shape (docs/metrics.md §7.5), each field is drawn next to the IA of a Gaussian
matrix of the same shape (the ``baseline`` column of ``spectrum.csv``); fields are sorted by cardinality V_f.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.plotting.degradation import ordered_variants
from collapse_lab.plotting.style import new_axes, place_legend, style_context, variant_style
from collapse_lab.results.stats import mean_ci

__all__ = ["plot_field_ia"]


def plot_field_ia(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                  confidence: float = 0.95, **style: Any) -> Tuple[Any, Any]:
    """A dot plot of per-field IA: one row per field (sorted by cardinality, the largest at the top), one marker
    per recipe at its mean over runs with a t interval over seeds, recipes offset within the row, and the IA of a
    same-shape Gaussian table as a black bar. The figure grows with the number of fields and recipes, so its
    text stays at the style's size.

    Args:
        df: rows ``field``, ``rows`` (cardinality V_f), ``variant``, ``value`` (IA), ``baseline`` (IA of a
            same-shape Gaussian matrix); several runs per recipe are averaged.
        ax: axes to draw on (default: a new figure sized to the fields).
        **style: passed to ``ax.errorbar``.
    """
    order = ordered_variants(df, variants)
    cardinality = df.groupby("field")["rows"].max().sort_values(kind="stable")
    fields = cardinality.index.tolist()
    y = np.arange(len(fields), dtype=float)
    step = 0.8 / max(len(order), 1)
    own = ax is None
    with style_context():
        fig, ax = new_axes(ax, figsize=(4.6, max(2.4, 0.5 + len(fields) * max(0.32, 0.09 * len(order)))))
        handles = []
        for i, variant in enumerate(order):
            st = variant_style(variant, i)
            sub = df[df["variant"] == variant]
            stats = np.array([mean_ci(sub.loc[sub["field"] == f, "value"].to_numpy(float), confidence)
                              for f in fields]).reshape(-1, 4)
            mean, lo, hi = stats[:, 0], stats[:, 2], stats[:, 3]
            xerr = np.vstack([np.where(np.isfinite(lo), mean - lo, 0.0), np.where(np.isfinite(hi), hi - mean, 0.0)])
            offset = ((len(order) - 1) / 2 - i) * step
            handles.append(ax.errorbar(mean, y + offset, xerr=xerr, color=st["color"], marker=st["marker"],
                                       markersize=3.5, linestyle="none", capsize=1.5, label=variant, **style))
        baseline = df.groupby("field")["baseline"].mean().reindex(fields).to_numpy(float)
        handles.append(ax.scatter(baseline, y, marker="|", s=220, color="black", linewidths=1.4, zorder=3,
                                  label="random baseline"))
        ax.set_yticks(y, [f"{f} ({int(v)})" for f, v in cardinality.items()])
        ax.set_ylim(-0.6, len(fields) - 0.4)
        ax.set_ylabel("field (cardinality)")
        ax.set_xlabel(r"information abundance $\Sigma\sigma / \sigma_{\max}$")
        ax.set_title("Per-field information abundance of the embedding tables")
        place_legend(ax, own, handles=handles)
    return fig, ax
