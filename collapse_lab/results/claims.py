"""The paper's headline claims C1–C8 (paper.md §14) measured on a sweep, with confidence intervals.

Each claim becomes one or more *quantities* — a difference of means with a 95% interval — and a verdict:

* **differences between settings** (e.g. the vanilla ensemble at the largest N minus the single model) use
  Welch's t interval (``scipy.stats.ttest_ind(equal_var=False).confidence_interval``); runs of different
  settings are different models, so they are not paired;
* **differences within the same runs or between recipes at the same N** (layer 1 − last layer of one model;
  KDEF − vanilla at one N) are paired over seeds (Student t interval of the differences).

Verdicts read the interval against the claimed direction: ``supported`` when the whole interval lies on the
claimed side of the threshold, ``contradicted`` when it lies on the other side, ``inconclusive`` otherwise
(including single runs, which have no interval). Thresholds are 0 except where the paper states a size:
"flat" and "within 0.1 AUC points" use the paper's 0.1-point significance threshold (paper.md §14), and
"close to uniform" examination weights (C7) means a relative spread std/mean below 10%. AUC quantities are in
AUC points (×100), KA in percentage points, logloss as is. The single model is vanilla mean fusion at N = 1.

**Trends over N.** "Rises with N", "flat to declining" and "loses AUC as N grows" are also read as a
least-squares line of the metric on log2 N over every run of the recipe (``stats.slope_ci``, t interval of the
slope), reported as the fitted change from the smallest to the largest N (slope × log2(N_max/N_min)) so that
the same thresholds apply as to the largest-N comparisons. C1 starts at the single model (N = 1, as the
paper's 1x → 10x statement); the other trends start at N = 2, as the paper states them ("81.53 (2x) → 81.60
(10x)"): the single model at x = 0 would otherwise dominate the fit and repeat the largest-N-vs-single test.
The largest-N comparisons use two settings only; the lines use all of them.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from collapse_lab.results.collect import layer_columns
from collapse_lab.results.stats import mean_ci, slope_ci

__all__ = ["CLAIMS", "evaluate_claims", "format_claims", "welch_ci"]

#: claim id -> the statement being tested (paper.md §14, shortened)
CLAIMS: Dict[str, str] = {
    "C1": "The vanilla mean ensemble does not scale: ensemble AUC is flat to declining in N",
    "C2": "Vanilla sub-networks collapse: the best student loses AUC as N grows; the ensemble-best gap is positive",
    "C3": "KA falls with depth and with N; KDEF raises the best student's KA (also read scale-free: effective rank)",
    "C4": "KD with the mean-logit teacher makes ensemble AUC rise with N",
    "C5": "DML keeps the students within 0.1 AUC points of the ensemble",
    "C6": "KDEF: ensemble AUC rises with N, every student beats the single model, gap < 0.1 AUC points",
    "C7": "The examination-mechanism weights are close to uniform (relative spread < 10%)",
    "C8": "Logloss is sometimes worse with knowledge transfer (KDEF vs vanilla mean at the same N)",
}
FLAT = 0.1  # AUC points: the paper's significance threshold
UNIFORM = 0.10  # relative spread std/mean of the EM weights counted as "close to uniform"


def welch_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> tuple:
    """``(mean(a) − mean(b), low, high)`` with Welch's t interval (NaN bounds when either side has < 2 values).

    Example (equal variances 1 and n = 3: standard error √(2/3), Welch df = 4, t_0.975,4 = 2.7764):
        >>> d, lo, hi = welch_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
        >>> round(d, 6), round(lo, 4), round(hi, 4)
        (1.0, -1.267, 3.267)
    """
    from scipy import stats

    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return np.nan, np.nan, np.nan
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return diff, np.nan, np.nan
    if x.std(ddof=1) == 0 and y.std(ddof=1) == 0:
        return diff, diff, diff
    with warnings.catch_warnings():  # one constant group is fine for Welch; scipy warns about its moments
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
    return diff, float(ci.low), float(ci.high)


def _verdict(lo: float, hi: float, side: str, threshold: float = 0.0) -> str:
    """``side`` is where the claim puts the quantity relative to ``threshold``: ``above`` or ``below``."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if side == "above":
        return "supported" if lo > threshold else "contradicted" if hi < threshold else "inconclusive"
    return "supported" if hi < threshold else "contradicted" if lo > threshold else "inconclusive"


def _row(claim: str, quantity: str, unit: str, est: tuple, runs: str, side: str, threshold: float = 0.0,
         scale: float = 1.0) -> Dict[str, object]:
    diff, lo, hi = (v * scale for v in est)
    rule = f"{'>' if side == 'above' else '<'} {threshold:g}"
    return {"claim": claim, "quantity": quantity, "unit": unit, "estimate": diff, "ci_low": lo, "ci_high": hi,
            "runs": runs, "rule": rule, "verdict": _verdict(lo, hi, side, threshold)}


def _values(runs: pd.DataFrame, variant: str, n: Optional[int], column: str) -> pd.Series:
    sub = runs[runs["variant"] == variant]
    if n is not None:
        sub = sub[sub["n"] == n]
    return pd.to_numeric(sub.set_index("seed")[column], errors="coerce") if column in sub else pd.Series(
        dtype=float)


def _trend_points(runs: pd.DataFrame, variant: str, column: str, min_n: int) -> pd.DataFrame:
    """``(n, value)`` of every run of ``variant`` with N >= min_n."""
    sub = runs[(runs["variant"] == variant) & (runs["n"] >= min_n)]
    if column not in sub:
        return pd.DataFrame({"n": [], "value": []})
    return pd.DataFrame({"n": sub["n"].astype(float), "value": pd.to_numeric(sub[column], errors="coerce")}).dropna()


def _layer_rows(runs: pd.DataFrame, measure: str, label: str, unit: str, scale: float,
                confidence: float) -> List[Dict[str, object]]:
    """C3 on one per-layer measure of the best student's hidden weights (``best_<measure>_layer<j>``): first −
    last layer of the single model (paired), the last layer of vanilla-mean at its largest N − the single model
    (Welch), and KDEF − vanilla-mean on the last layer at KDEF's largest N (paired)."""
    cols = [c for c in layer_columns(runs.columns, "best_") if c.startswith(f"best_{measure}_layer")]
    single, rows = "vanilla-mean", []
    if not cols:
        return rows
    last = len(cols)
    if last >= 2:
        mean, lo, hi, k = _paired(_values(runs, single, 1, cols[0]), _values(runs, single, 1, cols[-1]), confidence)
        if k:
            rows.append(_row("C3", f"{label} layer 1 − {label} layer {last} (single model)", unit, (mean, lo, hi),
                             str(k), "above", 0.0, scale))
    n = _largest_n(runs, single)
    a, b = _values(runs, single, n, cols[-1]), _values(runs, single, 1, cols[-1])
    if n is not None and not a.dropna().empty and not b.dropna().empty:
        rows.append(_row("C3", f"{label} layer {last}: best student (vanilla-mean, N={n}) − single model", unit,
                         welch_ci(a, b, confidence), f"{a.notna().sum()} vs {b.notna().sum()}", "below", 0.0, scale))
    n = _largest_n(runs, "kdef")
    if n is not None:
        mean, lo, hi, k = _paired(_values(runs, "kdef", n, cols[-1]), _values(runs, single, n, cols[-1]), confidence)
        if k:
            rows.append(_row("C3", f"{label} layer {last}: best student, kdef − vanilla-mean (N={n})", unit,
                             (mean, lo, hi), str(k), "above", 0.0, scale))
    return rows


def _paired(a: pd.Series, b: pd.Series, confidence: float) -> tuple:
    both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
    if both.empty:
        return np.nan, np.nan, np.nan, 0
    mean, _, lo, hi = mean_ci((both["a"] - both["b"]).to_numpy(float), confidence)
    return mean, lo, hi, len(both)


def _largest_n(runs: pd.DataFrame, variant: str) -> Optional[int]:
    ns = runs.loc[runs["variant"] == variant, "n"]
    return int(ns.max()) if len(ns) and int(ns.max()) > 1 else None


def evaluate_claims(results: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per measured quantity: ``claim, quantity, unit, estimate, ci_low, ci_high, runs, rule, verdict``.

    Quantities whose runs are missing from the sweep (e.g. no DML runs) are left out. With several datasets in
    ``results``, pass one dataset at a time.
    """
    runs = results[results["member"].astype(str) == "ensemble"] if "member" in results else results
    duplicated = runs.duplicated(subset=[c for c in ("variant", "n", "seed") if c in runs.columns])
    if duplicated.any():
        from collapse_lab.errors import UserError

        raise UserError("claims need one run per (recipe, N, seed); these results mix several settings "
                        "(evaluate one configuration at a time, e.g. per cfg_* column)")
    if "worst_student_auc" in runs.columns:
        runs = runs.assign(worst_gap=pd.to_numeric(runs["ensemble_auc"], errors="coerce")
                           - pd.to_numeric(runs["worst_student_auc"], errors="coerce"))
    rows: List[Dict[str, object]] = []
    single = "vanilla-mean"

    def vs_single(claim: str, variant: str, column: str, label: str, side: str, threshold: float = 0.0) -> None:
        n = _largest_n(runs, variant)
        a, b = _values(runs, variant, n, column), _values(runs, single, 1, "ensemble_auc")
        if n is None or a.empty or b.empty:
            return
        rows.append(_row(claim, f"{label} ({variant}, N={n}) − single model AUC", "AUC points",
                         welch_ci(a, b, confidence), f"{a.notna().sum()} vs {b.notna().sum()}", side, threshold, 100))

    def level(claim: str, variant: str, column: str, label: str, unit: str, side: str, threshold: float,
              scale: float) -> None:
        n = _largest_n(runs, variant)
        values = _values(runs, variant, n, column)
        if n is None or values.dropna().empty:
            return
        mean, _, lo, hi = mean_ci(values.to_numpy(float), confidence)
        rows.append(_row(claim, f"{label} ({variant}, N={n})", unit, (mean, lo, hi), str(values.notna().sum()),
                         side, threshold, scale))

    def trend(claim: str, variant: str, column: str, label: str, side: str, threshold: float = 0.0,
              min_n: int = 1) -> None:
        points = _trend_points(runs, variant, column, min_n)
        if points["n"].nunique() < 2:  # a slope needs two settings of N
            return
        slope, lo, hi, k = slope_ci(np.log2(points["n"]), points["value"], confidence)
        ns = sorted(int(v) for v in points["n"].unique())
        span = math.log2(ns[-1] / ns[0])  # the fitted change over the whole range, comparable with `threshold`
        rows.append(_row(claim, f"{label}, fitted change N={ns[0]}→{ns[-1]} ({variant}, N={','.join(map(str, ns))}; "
                                f"OLS on log2 N)", "AUC points", (slope * span, lo * span, hi * span), str(k), side,
                         threshold, 100))

    vs_single("C1", single, "ensemble_auc", "ensemble AUC", "below", FLAT)
    trend("C1", single, "ensemble_auc", "ensemble AUC", "below", FLAT)
    vs_single("C2", single, "best_student_auc", "best student AUC", "below")
    trend("C2", single, "best_student_auc", "best student AUC", "below", min_n=2)
    level("C2", single, "gap", "ensemble − best student AUC", "AUC points", "above", 0.0, 100)
    trend("C2", single, "gap", "ensemble − best student AUC", "above", min_n=2)
    trend("C2", single, "spread", "best − worst student AUC", "above", min_n=2)
    for measure, label, unit, scale in (("ka", "KA", "KA points (%)", 100.0),
                                        ("erank_ratio", "effective rank / Gaussian", "ratio", 1.0)):
        rows += _layer_rows(runs, measure, label, unit, scale, confidence)
    vs_single("C4", "kd", "ensemble_auc", "ensemble AUC", "above")
    trend("C4", "kd", "ensemble_auc", "ensemble AUC", "above", min_n=2)
    level("C5", "dml", "worst_gap", "ensemble − worst student AUC", "AUC points", "below", FLAT, 100)
    level("C5", "dml", "spread", "best − worst student AUC", "AUC points", "below", 0.01, 100)
    vs_single("C6", "kdef", "ensemble_auc", "ensemble AUC", "above")
    trend("C6", "kdef", "ensemble_auc", "ensemble AUC", "above", min_n=2)
    vs_single("C6", "kdef", "worst_student_auc", "worst student AUC", "above")
    level("C6", "kdef", "gap", "ensemble − best student AUC", "AUC points", "below", FLAT, 100)
    if {"lambda_std", "lambda_mean"} <= set(runs.columns):
        kdef = runs[runs["variant"] == "kdef"]
        rel = pd.to_numeric(kdef["lambda_std"], errors="coerce") / pd.to_numeric(kdef["lambda_mean"], errors="coerce")
        n = _largest_n(runs, "kdef")
        values = rel[kdef["n"] == n] if n is not None else rel.iloc[:0]
        if not values.dropna().empty:
            mean, _, lo, hi = mean_ci(values.to_numpy(float), confidence)
            rows.append(_row("C7", f"relative spread std/mean of λ (kdef, N={n})", "ratio", (mean, lo, hi),
                             str(values.notna().sum()), "below", UNIFORM))
    for n in sorted(set(runs.loc[runs["variant"] == "kdef", "n"])):
        mean, lo, hi, k = _paired(_values(runs, "kdef", int(n), "ensemble_logloss"),
                                  _values(runs, single, int(n), "ensemble_logloss"), confidence)
        if k:
            rows.append(_row("C8", f"ensemble logloss, kdef − vanilla-mean (N={int(n)})", "logloss",
                             (mean, lo, hi), str(k), "above", 0.0))
    columns = ["claim", "statement", "quantity", "unit", "estimate", "ci_low", "ci_high", "runs", "rule", "verdict"]
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "statement"])
    out.insert(1, "statement", out["claim"].map(CLAIMS))
    return out


def format_claims(claims: pd.DataFrame, digits: int = 3, confidence: float = 0.95) -> str:
    """A Markdown table of :func:`evaluate_claims` (estimate [CI at ``confidence``], verdict)."""
    lines = [f"| claim | quantity | estimate [{100 * confidence:g}% CI] | runs | claimed | verdict |",
             "|---|---|---|---|---|---|"]
    for r in claims.itertuples(index=False):
        ci = "" if math.isnan(r.ci_low) else f" [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]"
        lines.append(f"| {r.claim} | {r.quantity} ({r.unit}) | {r.estimate:.{digits}f}{ci} | {r.runs} | {r.rule} "
                     f"| {r.verdict} |")
    return "\n".join(lines)
