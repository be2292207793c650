"""Claim C9, knowledge transfer narrows the shared embedding: the embedding's spread relative to same-shape
Gaussian tables vs N per recipe.

Each run's shared embedding tables E_f ∈ ℝ^{V_f×D} are measured by information abundance IA = ‖σ‖₁/‖σ‖∞ and the
effective rank exp H(σ/‖σ‖₁) (docs/metrics.md §1, §3), each divided by the same measure of a Gaussian matrix of
the same shape and Frobenius norm and averaged over fields (``emb_ia_ratio_mean``, ``emb_erank_ratio_mean`` of
results.csv). 1 = as spread out as random; lower = the embedding uses fewer directions, the embedding collapse
of Guo et al., "On the Embedding Collapse when Scaling up Recommendation Models" (ICML 2024).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.plotting.degradation import draw_lines_vs_n, ordered_variants
from collapse_lab.plotting.style import new_axes, place_legend, style_context, variant_styles

__all__ = ["plot_embedding_collapse", "EMBEDDING_LABELS"]

#: y-axis label per measure (mathtext)
EMBEDDING_LABELS = {"emb_ia_ratio_mean": r"embedding IA / Gaussian  ($\Sigma\sigma/\sigma_{\max}$)",
                    "emb_erank_ratio_mean": "embedding effective rank / Gaussian"}


def plot_embedding_collapse(df: pd.DataFrame, ax: Any = None, variants: Optional[Sequence[str]] = None,
                            confidence: float = 0.95, **style: Any) -> Tuple[Any, Any]:
    """One panel per measure: the mean over seeds vs N per recipe with its t band, the single model once at
    N = 1, a dotted line at 1 (a Gaussian table's spread).

    Args:
        df: :func:`collapse_lab.results.tables.embedding_table` rows ``variant, n, seed, run, measure, value``
            (and ``single_model``).
        ax: a sequence of one axes per measure (default: a new figure).
        **style: passed to ``ax.plot``.
    """
    measures = [m for m in EMBEDDING_LABELS if m in set(df["measure"])] + sorted(
        set(df["measure"]) - set(EMBEDDING_LABELS))
    own = ax is None
    with style_context(), variant_styles(ordered_variants(df)):
        fig, axes = new_axes(ax, ncols=len(measures), figsize=(3.0 * len(measures), 2.7)) if ax is None \
            else new_axes(ax, ncols=len(measures))
        axes = np.atleast_1d(axes)
        order = ordered_variants(df, variants)
        for axis, measure in zip(axes, measures, strict=True):
            draw_lines_vs_n(axis, df[df["measure"] == measure], "value", order, confidence=confidence, **style)
            axis.axhline(1.0, color="0.5", linewidth=0.6, linestyle=":")
            axis.set_xticks(sorted(set(int(n) for n in df["n"])))
            axis.set_xlabel("number of sub-networks N")
            axis.set_ylabel(EMBEDDING_LABELS.get(measure, measure))
            axis.set_title("Shared embedding vs random (C9)")
        place_legend(axes[-1], own, max_inside=0 if own else 4)
    return fig, axes
