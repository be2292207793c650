"""Sentences with numbers taken from the computed tables, for the notebooks in ``analyses/``.

A notebook states what a figure shows with the numbers of the tables it has just computed — never typed in —
so the prose stays true when the tables change. Each function returns :class:`Prose`, a ``str`` that Jupyter
renders as Markdown. Intervals are the tables' own (Student t over seeds, docs/architecture.md §8; claims as
in :mod:`~collapse_lab.results.claims`, docs/method.md §14).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import pandas as pd

from collapse_lab.errors import UserError

__all__ = ["Prose", "describe_claims", "describe_vs_n", "select_recipes"]


class Prose(str):
    """A Markdown string: shown rendered in Jupyter (``_repr_markdown_``), as text elsewhere."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _scaled(row: pd.Series, scale: float, digits: int) -> str:
    return _interval(row["mean"] * scale, row["ci_low"] * scale, row["ci_high"] * scale, digits)


def _interval(mean: float, low: float, high: float, digits: int) -> str:
    if math.isnan(low) or math.isnan(high):
        return f"{mean:.{digits}f} (one run, no interval)"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def describe_claims(claims: pd.DataFrame, ids: Sequence[str] = ("C9",), digits: int = 3) -> Prose:
    """One paragraph per claim in ``ids``: its statement, how many quantities each verdict got, and every
    quantity with its estimate, 95% interval and verdict (rows of :func:`~collapse_lab.results.evaluate_claims`).

    Example:
        >>> row = {"claim": "C9", "statement": "S", "quantity": "q", "unit": "ratio", "estimate": -0.25,
        ...        "ci_low": -0.3, "ci_high": -0.2, "verdict": "supported"}
        >>> print(describe_claims(pd.DataFrame([row])))
        **C9** — S: 1 quantity; 1 supported.
        <BLANKLINE>
        - q: -0.250 [-0.300, -0.200] ratio, **supported**
    """
    parts: List[str] = []
    for claim in ids:
        rows = claims[claims["claim"] == claim]
        if rows.empty:
            parts.append(f"**{claim}**: not measurable on these runs (no quantity could be computed).")
            continue
        counts = rows["verdict"].value_counts()
        tally = ", ".join(f"{int(counts[v])} {v}" for v in ("supported", "contradicted", "inconclusive",
                                                            "not tested", "threshold unavailable") if v in counts)
        noun = "quantity" if len(rows) == 1 else "quantities"
        lines = [f"**{claim}** — {rows['statement'].iloc[0]}: {len(rows)} {noun}; {tally}.", ""]
        for r in rows.itertuples(index=False):
            lines.append(f"- {r.quantity}: {_interval(r.estimate, r.ci_low, r.ci_high, digits)} {r.unit}, "
                         f"**{r.verdict}**")
        parts.append("\n".join(lines))
    return Prose("\n\n".join(parts))


def describe_vs_n(summary: pd.DataFrame, metric: str, variants: Optional[Sequence[str]] = None,
                  scale: float = 1.0, unit: str = "", digits: int = 3) -> Prose:
    """For each recipe: the mean of ``metric`` (× ``scale``) with its 95% interval at the smallest N ≥ 2 and at
    the largest N, next to the single model's (vanilla-mean, N = 1), from :func:`~collapse_lab.results.summarize`.

    Example:
        >>> s = pd.DataFrame({"variant": ["vanilla-mean", "kd", "kd"], "n": [1, 2, 10], "metric": ["m"] * 3,
        ...                   "mean": [0.7, 0.68, 0.43], "ci_low": [0.69, 0.66, 0.41],
        ...                   "ci_high": [0.71, 0.70, 0.45], "runs": [5, 5, 5]})
        >>> print(describe_vs_n(s, "m"))
        m, mean over seeds [95% CI]; single model (N = 1): 0.700 [0.690, 0.710].
        <BLANKLINE>
        - kd: 0.680 [0.660, 0.700] at N = 2 → 0.430 [0.410, 0.450] at N = 10 (change -0.250)
    """
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise UserError(f"no {metric!r} in the summary; metrics: {', '.join(sorted(set(summary['metric'])))}")
    suffix = f" {unit}" if unit else ""
    single = rows[(rows["variant"] == "vanilla-mean") & (rows["n"] == 1)]
    head = f"{metric}{' (' + unit + ')' if unit else ''}, mean over seeds [95% CI]"
    if len(single):
        s = single.iloc[0]
        head += f"; single model (N = 1): {_scaled(s, scale, digits)}"
    lines = [head + ".", ""]
    order = list(variants) if variants is not None else list(dict.fromkeys(rows["variant"]))
    for variant in order:
        sub = rows[(rows["variant"] == variant) & (rows["n"] >= 2)].sort_values("n")
        if sub.empty:
            continue
        first, last = sub.iloc[0], sub.iloc[-1]
        text = [f"{_scaled(r, scale, digits)} at N = {int(r['n'])}" for r in (first, last)]
        change = (last["mean"] - first["mean"]) * scale
        lines.append(f"- {variant}: {text[0]} → {text[1]}{suffix} (change {change:+.{digits}f})"
                     if len(sub) > 1 else f"- {variant}: {text[0]}{suffix}")
    return Prose("\n".join(lines))


def select_recipes(results: pd.DataFrame, recipes: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The rows of ``recipes`` (all when None) plus the single model (vanilla-mean, N = 1), which every recipe's
    curve starts from.

    Raises:
        UserError: a recipe that is not in the results.
    """
    if recipes is None:
        return results
    known = set(results["variant"])
    unknown = [r for r in recipes if r not in known]
    if unknown:
        raise UserError(f"unknown recipe {unknown[0]!r}; these results hold: {', '.join(sorted(known))}")
    keep = results["variant"].isin(list(recipes)) | ((results["variant"] == "vanilla-mean") & (results["n"] == 1))
    return results[keep].reset_index(drop=True)
