"""Figure 16: do KDEF's parts and its parameter count explain its gain?

The left panel draws the ensemble test AUC (%) vs N of KDEF, its ablations (``kdef-kd-only``, ``kdef-dml-only``,
``kdef-uniform``, ``kdef-noem``: one part removed or replaced), vanilla-mean and the capacity control
(``vanilla-mean-capacity``: one student widened to the parameters of K students, at N = K), with the single model
once at N = 1 (:func:`~collapse_lab.plotting.degradation.draw_lines_vs_n`). The panels right of it draw KDEF
minus each ablation and KDEF minus the capacity control at the same N, paired by seed
(:func:`collapse_lab.results.tables.reference_difference_table`): a positive difference is what the removed part,
or what more than the parameter count, is worth.

Everywhere else the ablations share KDEF's vermillion and differ by marker; here, where they are the subject,
each is also a tint (lighter) or shade (darker) of it with a line style of its own (:data:`ABLATION_LOOKS`), so
they read apart in greyscale and under colour-vision deficiencies (one hue, told apart by lightness, dash and
marker). KDEF itself stays vermillion and solid.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import pandas as pd

from collapse_lab.plotting.degradation import ordered_variants, plot_metric_vs_n, with_difference_panels
from collapse_lab.plotting.style import VARIANT_STYLES, style_context, tint, variant_looks, variant_styles
from collapse_lab.results.tables import CAPACITY_CONTROL, KDEF_ABLATIONS, reference_difference_table

__all__ = ["ABLATION_LOOKS", "plot_controls"]

_KDEF = VARIANT_STYLES["kdef"]["color"]
#: figure 16's looks of KDEF's ablations: tints and shades of KDEF's vermillion, a dash pattern each (the markers
#: stay those of :data:`~collapse_lab.plotting.style.VARIANT_STYLES`)
ABLATION_LOOKS: Dict[str, Dict[str, Any]] = {
    "kdef-kd-only": {"color": tint(_KDEF, 0.4), "linestyle": "--"},
    "kdef-dml-only": {"color": tint(_KDEF, -0.4), "linestyle": ":"},
    "kdef-uniform": {"color": tint(_KDEF, 0.6), "linestyle": "-."},
    "kdef-noem": {"color": tint(_KDEF, -0.65), "linestyle": (0, (5, 1.5, 1, 1.5, 1, 1.5))},
}


def plot_controls(df: pd.DataFrame, variants: Optional[Sequence[str]] = None, confidence: float = 0.95,
                  reference: str = "kdef", **style: Any) -> Tuple[Any, Any]:
    """Figure 16: ensemble test AUC (%) vs N of KDEF and its controls, and KDEF minus each control, paired by seed.

    Args:
        df: one row per run (:func:`collapse_lab.results.tables.controls_table`): ``variant``, ``n``, ``seed``,
            ``ensemble_auc`` (and ``single_model``).
        variants: recipes of the left panel, in this order (default: all present, in the canonical order).
        confidence: level of the bands and intervals.
        reference: the recipe the differences are taken from.
        **style: passed to ``ax.plot`` for every line of the left panel.

    Returns:
        ``(fig, axes)``: the left panel, then a panel "kdef − ablation" and a panel "kdef − capacity-matched",
        each only where it has a pair.
    """
    own = df[~df["single_model"].astype(bool)] if "single_model" in df else df
    present = ordered_variants(own)
    groups = (("ablation", [v for v in KDEF_ABLATIONS if v in present]),
              ("capacity-matched", [v for v in (CAPACITY_CONTROL,) if v in present]))
    with style_context(), variant_styles(ordered_variants(df)), variant_looks(ABLATION_LOOKS):
        diffs = [(f"{reference} − {what}",
                  reference_difference_table(df, "ensemble_auc", reference, recipes, scale=100.0,
                                             confidence=confidence)) for what, recipes in groups]

        def draw(axis: Any) -> Tuple[Any, Any]:
            return plot_metric_vs_n(df, "ensemble_auc", ax=axis, variants=variants, scale=100.0,
                                    ylabel="ensemble test AUC (%)", title="KDEF, its ablations and capacity",
                                    confidence=confidence, **style)

        return with_difference_panels(draw, diffs, "Δ ensemble AUC, paired by seed (points)", variants)
