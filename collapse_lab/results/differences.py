"""Paired differences over seeds for the figures' difference panels: each recipe against the single model or
vanilla-mean at the same N (:func:`difference_table`, figures 1-3), and one reference recipe against others at
the same N (:func:`reference_difference_table`, figure 16: KDEF minus its ablations and the capacity control).

Runs that share a seed share their data order and initial seeds, so the difference d_s = x_s - b_s is taken per
seed and summarised by its mean and Student t interval (:func:`collapse_lab.results.stats.mean_ci`). The
statistics of the results tables (every pair of recipes, with tests and Benjamini-Hochberg) are
:func:`collapse_lab.results.stats.paired_tests`; these tables are the same differences shaped for plotting.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import pandas as pd

from collapse_lab.errors import UserError
from collapse_lab.results.stats import mean_ci

__all__ = ["SINGLE_VARIANT", "DIFFERENCE_BASELINES", "DIFFERENCE_COLUMNS", "difference_table",
           "reference_difference_table"]

#: the single model's recipe: vanilla mean fusion at N = 1
SINGLE_VARIANT = "vanilla-mean"

#: baselines of :func:`difference_table`
DIFFERENCE_BASELINES = ("single model", SINGLE_VARIANT)


def difference_table(runs: pd.DataFrame, metric: str, baseline: str = "single model", scale: float = 1.0,
                     confidence: float = 0.95) -> pd.DataFrame:
    """``variant, n, estimate, ci_low, ci_high, pairs``: each recipe's ``metric`` minus the baseline's, paired
    over seeds (mean of d_s = x_s − b_s with its Student t interval, :func:`collapse_lab.results.stats.mean_ci`;
    runs sharing a seed share their data order and initial seeds, so pairing removes that part of the noise).

    ``baseline`` is ``"single model"`` (vanilla-mean at N = 1, every recipe at every N ≥ 2 against it) or
    ``"vanilla-mean"`` (every other recipe against vanilla-mean at the same N). ``runs``: one row per run
    (``variant, n, seed, metric``; rows marked ``single_model`` — copies of the single model — are ignored).

    Example (two seeds, differences 1 and 3: mean 2, t_0.975,1 × √2/√2 = 12.706):
        >>> df = pd.DataFrame({"variant": ["vanilla-mean"] * 2 + ["kd"] * 2, "n": [1, 1, 2, 2],
        ...                    "seed": [0, 1, 0, 1], "auc": [0.5, 0.5, 1.5, 3.5]})
        >>> difference_table(df, "auc").round(3).to_dict("records")
        [{'variant': 'kd', 'n': 2, 'estimate': 2.0, 'ci_low': -10.706, 'ci_high': 14.706, 'pairs': 2}]
    """
    if baseline not in DIFFERENCE_BASELINES:
        raise UserError(f"unknown difference baseline {baseline!r}; valid: {', '.join(DIFFERENCE_BASELINES)}")
    values = _paired_values(runs, metric, scale)
    single = values[(values["variant"] == SINGLE_VARIANT) & (values["n"] == 1)].set_index("seed")["value"]
    rows = []
    for (variant, n), sub in values[values["n"] >= 2].groupby(["variant", "n"], sort=False):
        if baseline == SINGLE_VARIANT:
            if variant == SINGLE_VARIANT:
                continue
            base = values[(values["variant"] == SINGLE_VARIANT) & (values["n"] == n)].set_index("seed")["value"]
        else:
            base = single
        row = _paired_difference(sub.set_index("seed")["value"], base, confidence)
        if row is not None:
            rows.append({"variant": variant, "n": int(n), **row})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


#: the columns of :func:`difference_table` and :func:`reference_difference_table`
DIFFERENCE_COLUMNS = ["variant", "n", "estimate", "ci_low", "ci_high", "pairs"]


def _paired_values(runs: pd.DataFrame, metric: str, scale: float) -> pd.DataFrame:
    """The runs of their own (not the single model's copies) with ``value`` = ``metric`` × ``scale``."""
    if "single_model" in runs:
        runs = runs[~runs["single_model"].astype(bool)]
    return runs.assign(value=pd.to_numeric(runs[metric], errors="coerce") * scale)


def _paired_difference(a: pd.Series, b: pd.Series, confidence: float) -> Optional[Dict[str, float]]:
    """``estimate, ci_low, ci_high, pairs`` of a_s − b_s over the seeds both have (``mean_ci``), or None."""
    both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
    if both.empty:
        return None
    mean, _, lo, hi = mean_ci((both["a"] - both["b"]).to_numpy(float), confidence)
    return {"estimate": mean, "ci_low": lo, "ci_high": hi, "pairs": len(both)}


def reference_difference_table(runs: pd.DataFrame, metric: str, reference: str = "kdef",
                               variants: Optional[Sequence[str]] = None, scale: float = 1.0,
                               confidence: float = 0.95) -> pd.DataFrame:
    """``variant, n, estimate, ci_low, ci_high, pairs``: ``reference`` minus each recipe of ``variants`` (default:
    every other recipe) at the same N, paired over seeds as in :func:`difference_table` — e.g. KDEF minus each of
    its ablations (what the removed part is worth) and minus the capacity control, whose N is the K students
    whose parameters it has (figure 16). ``variant`` names the recipe subtracted; N = 1 is left out.

    Example (differences 1 and 3 over two seeds):
        >>> df = pd.DataFrame({"variant": ["kdef"] * 2 + ["kdef-uniform"] * 2, "n": [2] * 4,
        ...                    "seed": [0, 1, 0, 1], "auc": [1.5, 3.5, 0.5, 0.5]})
        >>> reference_difference_table(df, "auc").round(3).to_dict("records")
        [{'variant': 'kdef-uniform', 'n': 2, 'estimate': 2.0, 'ci_low': -10.706, 'ci_high': 14.706, 'pairs': 2}]
    """
    values = _paired_values(runs, metric, scale)
    own = values[values["n"] >= 2]
    wanted = [v for v in dict.fromkeys(own["variant"]) if v != reference] if variants is None else list(variants)
    rows = []
    for (variant, n), sub in own[own["variant"].isin(wanted)].groupby(["variant", "n"], sort=False):
        base = own[(own["variant"] == reference) & (own["n"] == n)].set_index("seed")["value"]
        row = _paired_difference(base, sub.set_index("seed")["value"], confidence)
        if row is not None:
            rows.append({"variant": variant, "n": int(n), **row})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)
