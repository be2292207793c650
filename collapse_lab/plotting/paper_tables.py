"""The paper's Tables V and VI as figures: each row's test AUC with its interval over seeds, and the paired
differences the paper's rows imply beside the paper's own.

Left panel: test AUC (%) per row, mean over seeds with the 95% Student-t interval (Table V: KDEF_Latest, its
students alone and inside it, the ablations; Table VI: each backbone X alone and as KDEF_X inside FINAL + ECN + X).
Right panel: the paired difference of a row to the row the paper compares it with (``X -> KDEF_X``; an ablation
-> KDEF_Latest), in AUC points with its paired 95% interval, and as a hollow marker the same difference in the
paper's numbers on its closest dataset (docs/method.md §11; ML-1M for MovieLens-100K). Absolute AUCs of another
dataset are not comparable with the paper's; the differences are what a reproduction can check.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import pandas as pd

from collapse_lab.plotting.style import new_axes, style_context

__all__ = ["plot_paper_table"]


def plot_paper_table(table: pd.DataFrame, ax: Any = None) -> Tuple[Any, Any]:
    """Draw :func:`collapse_lab.results.paper_tables.paper_table` rows (``table5_frame`` / ``table6_frame``).

    Args:
        table: one line per paper row with ``row, auc_mean, auc_lo, auc_hi, paper_auc, paired_with,
            diff_auc_mean, diff_auc_lo, diff_auc_hi, diff_seeds`` (AUC in [0, 1]) and ``paper_dataset``.
        ax: two axes (default: a new figure).
    """
    rows = table.reset_index(drop=True)
    y = np.arange(len(rows))[::-1]  # first row on top
    column = str(rows["paper_dataset"].iloc[0]) if "paper_dataset" in rows else "paper"
    with style_context():
        fig, (left, right) = new_axes(ax, ncols=2, figsize=(7.0, 0.32 * len(rows) + 1.4), sharey=True)
        has = np.isfinite(rows["auc_mean"].to_numpy(float))
        mean = rows["auc_mean"].to_numpy(float) * 100
        err = np.vstack([mean - rows["auc_lo"].to_numpy(float) * 100, rows["auc_hi"].to_numpy(float) * 100 - mean])
        left.errorbar(mean[has], y[has], xerr=np.nan_to_num(err[:, has]), fmt="o", color="C0", capsize=2, ms=4)
        left.set_yticks(y, rows["row"])
        left.set_xlabel("test AUC (%), mean over seeds, 95% CI")
        paired = rows["diff_seeds"].to_numpy(int) > 0
        d = rows["diff_auc_mean"].to_numpy(float) * 100
        derr = np.vstack([d - rows["diff_auc_lo"].to_numpy(float) * 100, rows["diff_auc_hi"].to_numpy(float) * 100 - d])
        right.errorbar(d[paired], y[paired], xerr=np.nan_to_num(derr[:, paired]), fmt="o", color="C0", capsize=2,
                       ms=4, label="this sweep (paired)")
        by_label = dict(zip(rows["row"], rows["paper_auc"].to_numpy(float), strict=True))
        paper_d = np.array([(p - by_label.get(w, np.nan)) * 100 if w else np.nan
                            for p, w in zip(rows["paper_auc"].to_numpy(float), rows["paired_with"], strict=True)])
        shown = np.isfinite(paper_d)
        right.plot(paper_d[shown], y[shown], "D", mfc="none", color="C3", ms=5, label=f"paper ({column})")
        right.axvline(0.0, color="0.5", lw=0.8, ls=":")
        right.set_xlabel("Δ test AUC vs the compared row (AUC points)")
        for yi, w in zip(y, rows["paired_with"], strict=True):
            if w:
                right.annotate(f"vs {w}", (1.0, yi), xycoords=("axes fraction", "data"), fontsize=6.5,
                               color="0.35", ha="left", va="center", xytext=(3, 0), textcoords="offset points")
        right.legend(loc="lower left", fontsize=7, frameon=False)
    return fig, (left, right)
