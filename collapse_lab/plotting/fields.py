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

__all__ = ["plot_field_ia"]


def plot_field_ia(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                  **style: Any) -> Tuple[Any, Any]:
    """Grouped bars of per-field IA per recipe (mean over runs) with the random baseline as black ticks.

    Args:
        df: rows ``field``, ``rows`` (cardinality V_f), ``variant``, ``value`` (IA), ``baseline`` (IA of a
            same-shape Gaussian matrix); several runs per recipe are averaged.
        ax: axes to draw on (default: a new double-column figure).
        **style: passed to ``ax.bar``.
    """
    order = ordered_variants(df, variants)
    fields = (df.groupby("field")["rows"].max().sort_values(kind="stable").index.tolist())
    x = np.arange(len(fields), dtype=float)
    width = 0.8 / max(len(order), 1)
    own = ax is None
    with style_context():
        fig, ax = new_axes(ax, figsize=(max(3.5, 0.55 * len(fields) * max(1, len(order)) / 2 + 1.5), 2.6))
        handles = []
        for i, variant in enumerate(order):
            sub = df[df["variant"] == variant].groupby("field")["value"].mean().reindex(fields)
            handles.append(ax.bar(x + (i - (len(order) - 1) / 2) * width, sub.to_numpy(float), width=width,
                                  color=variant_style(variant, i)["color"], label=variant, **style))
        baseline = df.groupby("field")["baseline"].mean().reindex(fields).to_numpy(float)
        handles.append(ax.scatter(x, baseline, marker="_", s=240, color="black", linewidths=1.4, zorder=3,
                                  label="random baseline"))
        cardinality = df.groupby("field")["rows"].max().reindex(fields)
        ax.set_xticks(x, [f"{f}\n({int(v)})" for f, v in zip(fields, cardinality, strict=True)], rotation=0)
        ax.set_xlabel("field (cardinality), sorted by cardinality")
        ax.set_ylabel("information abundance Σσ/σ_max")
        ax.set_title("Per-field information abundance of the embedding tables")
        place_legend(ax, own, handles=handles, ncols=min(4, len(order) + 1))
    return fig, ax
