"""Examination-mechanism weights over training (claim C7, docs/method.md §14).

KDEF sets the KD weight λ_k of student k by a softmin over exam scores and the DML weight μ_{k,l} by a softmax
over score differences, so Σ_k λ_k = 1 and Σ_{l≠k} μ_{k,l} = 1: uniform weights are λ_k = 1/N and
μ_{k,l} = 1/(N − 1). The figure shows (left) N·λ_k per student over epochs for one run — 1 means uniform — and
(right) the relative spread std/mean of λ and μ over batches × students per epoch, averaged over seeds, for
each N: 0 means the mechanism reduces to fixed uniform weights.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from collapse_lab.plotting.style import new_axes, place_legend, style_context

__all__ = ["plot_exam_weights", "sequential_colors"]


#: legend symbols of the two weight families (plain glyphs: no subscript to render)
SYMBOLS = {"lambda": "λ", "mu": "μ"}


def sequential_colors(count: int, cmap: str, low: float = 0.0, high: float = 0.85) -> list:
    """``count`` colours evenly spaced on ``[low, high]`` of a perceptually uniform matplotlib colour map, so
    that students and values of N get palettes of their own, apart from the recipes' Okabe–Ito colours.

    Example:
        >>> colors = sequential_colors(3, "viridis")
        >>> len(colors), colors[0] == sequential_colors(1, "viridis")[0], colors[0] != colors[-1]
        (3, True, True)
    """
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    return [colormap(v) for v in np.linspace(low, high, count)] if count > 1 else [colormap(low)]


def plot_exam_weights(df: pd.DataFrame, ax: Any = None, **style: Any) -> Tuple[Any, Any]:
    """N·λ_k per student for the largest-N run (first seed), and the relative spread of λ and μ vs epoch.

    Args:
        df: tidy ``metrics.csv`` rows of KDEF runs (split ``train``) with columns ``run``, ``n``, ``seed``,
            ``epoch``, ``member``, ``metric``, ``value``; metrics ``lambda`` (per student) and
            ``lambda_mean``, ``lambda_std``, ``mu_mean``, ``mu_std`` (member ``ensemble``).
        ax: a sequence of two axes (default: a new double-column figure).
        **style: passed to ``ax.plot``.
    """
    own = ax is None
    with style_context():
        fig, axes = new_axes(ax, ncols=2)
        left, right = axes
        n_max = int(df["n"].max())
        first = df[df["n"] == n_max].sort_values(["seed", "run"])["run"].iloc[0]
        lam = df[(df["run"] == first) & (df["metric"] == "lambda")]
        members = sorted(lam.groupby("member"), key=lambda kv: int(kv[0]))
        student_colors = sequential_colors(len(members), "viridis")  # students: viridis, not the recipe colours
        for k, (member, sub) in enumerate(members):
            sub = sub.sort_values("epoch")
            left.plot(sub["epoch"], sub["value"] * n_max, color=student_colors[k], alpha=0.85,
                      label=f"student {member}", **style)
        left.axhline(1.0, color="0.3", linestyle="--", linewidth=0.8, label="_nolegend_")
        left.set_xlabel("epoch")
        left.set_ylabel(r"$N \cdot \lambda_k$  (1 = uniform)")
        left.set_title(rf"KD weights $\lambda_k$, N = {n_max}")
        if n_max <= 6:
            left.legend()
        ens = df[df["member"] == "ensemble"]
        wide = ens.pivot_table(index=["n", "run", "epoch"], columns="metric", values="value").reset_index()
        n_values = sorted(wide["n"].unique())
        n_colors = sequential_colors(len(n_values), "magma", 0.15, 0.75)  # N: magma, its own palette
        for i, n in enumerate(n_values):
            sub = wide[wide["n"] == n]
            color = n_colors[i]
            for name, style_line in (("lambda", "-"), ("mu", "--")):
                if f"{name}_std" not in sub or f"{name}_mean" not in sub:
                    continue
                rel = (sub[f"{name}_std"] / sub[f"{name}_mean"]).replace([np.inf, -np.inf], np.nan)
                curve = rel.groupby(sub["epoch"]).mean()
                right.plot(curve.index, curve.to_numpy(float), color=color, linestyle=style_line,
                           label=f"{SYMBOLS[name]}, N = {int(n)}", **style)
        right.axhline(0.0, color="0.5", linestyle=":", linewidth=0.6)
        right.set_xlabel("epoch")
        right.set_ylabel("relative spread std / mean")
        right.set_title("Departure from uniform weights")
        place_legend(right, own, ncols=2, max_inside=6)
        for axis in (left, right):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes
