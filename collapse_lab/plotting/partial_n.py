"""Recipes measured at some N only, in the scaling figures (:mod:`collapse_lab.plotting.degradation`).

A sweep of student mixes (docs/method.md §11, Tables V and VI) runs each backbone alone at N = 1 and the mixes
at N > 1 only, so the figures of ensemble and student AUC vs N must show recipes that share no N:

* :func:`only_at_one`, :func:`draw_level` — a recipe measured at N = 1 only (a backbone alone) is its point at
  N = 1 and a dashed level across the N axis, so the recipes at larger N read against it, not a lone point;
* :func:`student_legend` — the legend of figure 2: one entry per recipe (dashed for a level), the single model,
  and two keys for the line styles of the best (solid) and worst (dashed, open marker) student;
* :func:`sparse_boxes` — figure 4 when recipes were run at some N only: at each N only the recipes present there
  share the slot, instead of one slot per recipe at every N with most of them empty;
* :func:`box_legend`, :func:`hatch_dodged_boxes` — the legend of figure 4 and the hatches that tell apart boxes of
  recipes sharing a colour (KDEF's controls share KDEF's; a box has no marker).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch

from collapse_lab.plotting.style import variant_style

__all__ = ["SINGLE_LABEL", "LEVEL_LINESTYLE", "only_at_one", "draw_level", "student_legend", "sparse_boxes",
           "box_legend", "hatch_dodged_boxes"]

#: the legend label of the single model (vanilla-mean at N = 1)
SINGLE_LABEL = "single model"
#: line style of a recipe measured at N = 1 only (:func:`draw_level`)
LEVEL_LINESTYLE = (0, (4, 2))


def only_at_one(sub: pd.DataFrame, all_ns: Sequence[Any]) -> bool:
    """Whether a recipe's rows ``sub`` are all at N = 1 while the figure has other N (a backbone trained alone,
    e.g. ``vanilla-mean@pnn`` beside ``kdef@pnn+final+ecn``): it is drawn as a level, not as a lone point."""
    ns = set(pd.to_numeric(sub["n"], errors="coerce").dropna().astype(int))
    return ns == {1} and len(set(pd.to_numeric(pd.Series(list(all_ns)), errors="coerce").dropna().astype(int))) > 1


def draw_level(ax: Any, y: float, lo: float, hi: float, style: Mapping[str, str], label: str,
               **kwargs: Any) -> None:
    """A recipe measured at N = 1 only: its mean at N = 1 (marker, t interval) and a dashed line at that level
    across the N axis, so the recipes at larger N read against it; one legend entry (marker on a dashed line)."""
    if not np.isfinite(y):
        return
    yerr = None if not (np.isfinite(lo) and np.isfinite(hi)) else [[y - lo], [hi - y]]
    ax.errorbar([1.0], [y], yerr=yerr, color=style["color"], marker=style["marker"], capsize=2, linestyle="none",
                label="_nolegend_", zorder=3)
    ax.axhline(y, color=style["color"], linestyle=LEVEL_LINESTYLE, linewidth=0.8, alpha=0.7, label="_nolegend_")
    ax.plot([1.0], [y], color=style["color"], marker=style["marker"], linestyle=LEVEL_LINESTYLE, label=label,
            **kwargs)


def student_legend(order: Sequence[str], single: bool, levels: Sequence[str] = ()) -> List[Any]:
    """Legend entries of figure 2: one per recipe (its colour and marker; dashed for a recipe at N = 1 only),
    the single model, and two keys for the line styles — not a best and a worst entry per recipe."""
    handles: List[Any] = []
    for i, variant in enumerate(order):
        st = variant_style(variant, i)
        handles.append(Line2D([], [], color=st["color"], marker=st["marker"], label=variant,
                              linestyle=LEVEL_LINESTYLE if variant in levels else "-"))
    if single:
        st = variant_style(SINGLE_LABEL)
        handles.append(Line2D([], [], color=st["color"], marker=st["marker"], linestyle="none", label=SINGLE_LABEL))
    handles.append(Line2D([], [], color="0.3", linestyle="-", label="best student (solid)"))
    handles.append(Line2D([], [], color="0.3", linestyle="--", marker="o", markerfacecolor="white",
                          label="worst student (dashed, open)"))
    return handles


def sparse_boxes(ax: Any, data: pd.DataFrame, single: pd.DataFrame, ns: Sequence[int],
                 present: Mapping[int, Sequence[str]], palette: Mapping[str, str],
                 hatches: Optional[Mapping[str, str]] = None) -> None:
    """Figure 4 when recipes were run at some N only (a sweep of student mixes): at each N only the recipes
    present there (and the single model at N = 1) share the slot, side by side, instead of one slot per recipe
    at every N with most of them empty; ``hatches`` (by recipe) tell apart recipes of one colour."""
    grey = variant_style(SINGLE_LABEL)["color"]
    rng = np.random.default_rng(0)  # the jitter of the points: fixed, so the figure is reproducible
    for x, n in enumerate(ns):
        groups = [(v, data.loc[(data["n"] == n) & (data["variant"] == v), "auc"].to_numpy(float), palette[v])
                  for v in present[n]]
        if n == 1 and len(single):
            groups.insert(0, (SINGLE_LABEL, single["test_auc"].to_numpy(float) * 100, grey))
        if not groups:
            continue
        width = 0.8 / len(groups)
        for k, (variant, values, color) in enumerate(groups):
            pos = x - 0.4 + width * (k + 0.5)
            ax.boxplot(values, positions=[pos], widths=width * 0.85, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": color, "alpha": 0.45, "edgecolor": "0.35",
                                 "hatch": (hatches or {}).get(variant, "")},
                       medianprops={"color": "0.2"}, whiskerprops={"color": "0.35"}, capprops={"color": "0.35"})
            jitter = rng.uniform(-0.3, 0.3, values.size) * width
            ax.scatter(pos + jitter, values, s=6, color=color, linewidths=0, zorder=3)
    ax.set_xlim(-0.6, len(ns) - 0.4)


def hatch_dodged_boxes(ax: Any, hatches: Sequence[str]) -> None:
    """Hatch seaborn's dodged boxes (width 0.8 split into one slot per recipe at each N) by their slot; its other
    patches (unit rectangles it keeps for the legend) are left alone."""
    if not any(hatches):
        return
    for patch in ax.patches:
        if not isinstance(patch, PathPatch):
            continue
        extents = patch.get_path().get_extents()
        centre = (extents.x0 + extents.x1) / 2
        slot = int(np.floor((centre - round(centre) + 0.4) / (0.8 / len(hatches))))
        patch.set_hatch(hatches[min(max(slot, 0), len(hatches) - 1)])


def box_legend(order: Sequence[str], palette: Mapping[str, str], hatches: Mapping[str, str],
               single: bool) -> List[Any]:
    """Legend entries of figure 4: one box per recipe (colour and hatch) and the single model's grey box."""
    handles = [Patch(facecolor=palette[v], edgecolor="0.35", alpha=0.45, hatch=hatches[v], label=v) for v in order]
    if single:
        grey = variant_style(SINGLE_LABEL)["color"]
        handles.append(Patch(facecolor=grey, edgecolor=grey, alpha=0.45, label=SINGLE_LABEL))
    return handles
