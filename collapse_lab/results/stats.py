"""Statistics over seeds: mean ± confidence interval per setting, and paired tests between recipes.

**Confidence interval** of a mean over n runs (Student t, n − 1 degrees of freedom):

.. math::

    \\bar x \\pm t_{1-\\alpha/2,\\,n-1}\\, s/\\sqrt{n}, \\qquad s^2 = \\tfrac{1}{n-1}\\sum_i (x_i - \\bar x)^2

(``scipy.stats.t.interval``); undefined (NaN) for n < 2.

**Paired tests.** Two recipes at the same (dataset, N) are compared over the seeds both ran: the differences
d_s = x_s(variant) − x_s(baseline) get a paired t-test (``scipy.stats.ttest_rel``) and a t interval for their
mean; with at least 6 pairs also the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``), which needs no
normality assumption (with fewer pairs its smallest attainable two-sided p-value exceeds 0.05).
Runs sharing a seed share their data order and initial seeds, so pairing removes that part of the noise.

**Multiple comparisons.** ``paired_tests`` runs many tests (every pair of recipes at every N); each metric is
one family, and within it the p-values are adjusted by Benjamini–Hochberg (``scipy.stats.false_discovery_control``,
method ``bh``; Benjamini & Hochberg 1995, JRSS B 57:289), which controls the false discovery rate at the level
the adjusted p-value is read against: ``p_ttest_bh`` and ``p_wilcoxon_bh``, NaN where the raw test is NaN.

Reference: docs/method.md §14 (the paper ran one seed per point; differences of 0.05–0.1 AUC points are comparable
to seed noise on small data).
"""

from __future__ import annotations

import itertools
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.results.collect import VARIANT_ORDER, layer_columns

__all__ = ["RUN_METRICS", "mean_ci", "slope_ci", "group_keys", "summarize", "paired_tests", "bh_adjust",
           "MIN_WILCOXON_PAIRS"]

#: per-run quantities summarised by default (those present in the table are used)
RUN_METRICS = ("ensemble_auc", "ensemble_logloss", "best_student_auc", "worst_student_auc", "spread", "gap",
               "student_auc_sd", "student_auc_diff_se", "emb_ia_mean", "emb_erank_mean", "emb_ia_ratio_mean",
               "emb_erank_ratio_mean", "emb_ia_ratio_change", "emb_erank_ratio_change", "lambda_mean", "lambda_std",
               "mu_mean", "mu_std")
MIN_WILCOXON_PAIRS = 6


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Tuple[float, float, float, float]:
    """``(mean, std, ci_low, ci_high)`` of the finite values (Student t interval; NaN bounds for n < 2).

    Example:
        >>> m, s, lo, hi = mean_ci([1.0, 2.0, 3.0])
        >>> round(m, 6), round(s, 6), round(lo, 4), round(hi, 4)
        (2.0, 1.0, -0.4841, 4.4841)
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan, np.nan, np.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, np.nan, np.nan, np.nan
    std = float(x.std(ddof=1))
    if std == 0.0:
        return mean, 0.0, mean, mean
    lo, hi = stats.t.interval(confidence, df=x.size - 1, loc=mean, scale=std / np.sqrt(x.size))
    return mean, std, float(lo), float(hi)


def slope_ci(x: Sequence[float], y: Sequence[float], confidence: float = 0.95,
             weights: Optional[Sequence[float]] = None) -> Tuple[float, float, float, int]:
    """``(slope, ci_low, ci_high, k)``: least-squares slope of ``y`` on ``x`` over the k finite pairs.

    .. math::

        \\hat\\beta = \\frac{\\sum_i (x_i - \\bar x)(y_i - \\bar y)}{\\sum_i (x_i - \\bar x)^2}, \\qquad
        \\hat\\beta \\pm t_{1-\\alpha/2,\\,k-2}\\; \\mathrm{se}(\\hat\\beta)

    with se² = SSE / ((k − 2) Σ(x − x̄)²) (the standard error ``scipy.stats.linregress`` reports; computed here
    so that constant or exactly linear y give a zero-width interval on every scipy version); every point is one
    independent run. NaN slope when x takes one value, NaN bounds when k < 3.

    With ``weights`` w_i ∝ 1/Var(y_i) (points of unequal precision) it is the weighted least-squares line:
    every sum above gets the factor w_i and the means become weighted means (x̄ = Σw x / Σw), with
    se² = Σw r² / ((k − 2) Σw(x − x̄)²) — the OLS formulas on the rows scaled by √w_i.

    Example (y = 2x ± 1 at x = 0 and 1: slope 2, se = √2, t_0.975,2 = 4.3027):
        >>> b, lo, hi, k = slope_ci([0, 0, 1, 1], [1, -1, 3, 1])
        >>> round(b, 6), round(lo, 4), round(hi, 4), k
        (2.0, -4.0849, 8.0849, 4)
    """
    from scipy import stats

    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    ws = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(ws) & (ws > 0)
    xs, ys, ws = xs[keep], ys[keep], ws[keep]
    k = int(xs.size)
    if k < 2 or np.ptp(xs) == 0:
        return np.nan, np.nan, np.nan, k
    dx = xs - np.average(xs, weights=ws)
    dy = ys - np.average(ys, weights=ws)
    sxx = float(ws @ (dx * dx))
    slope = float(ws @ (dx * dy) / sxx)
    if k < 3:
        return slope, np.nan, np.nan, k
    residual = dy - slope * dx
    stderr = float(np.sqrt(max(float(ws @ (residual * residual)), 0.0) / (k - 2) / sxx))  # 0 on an exact line
    half = float(stats.t.ppf(0.5 + confidence / 2, df=k - 2) * stderr)
    return slope, slope - half, slope + half, k


def group_keys(df: pd.DataFrame) -> List[str]:
    """The columns that define a setting: dataset, variant, method, fusion, n and any ``cfg_*`` column."""
    keys = [k for k in ("dataset", "variant", "method", "fusion", "n") if k in df.columns]
    return keys + sorted(c for c in df.columns if c.startswith("cfg_"))


def _run_level(results: pd.DataFrame) -> pd.DataFrame:
    if "member" in results.columns:
        return results[results["member"].astype(str) == "ensemble"]
    return results


def _metrics_present(df: pd.DataFrame, metrics: Optional[Sequence[str]]) -> List[str]:
    if metrics is None:
        metrics = list(RUN_METRICS) + layer_columns(df.columns, "best_")
    present = [m for m in metrics if m in df.columns]
    return [m for m in present if pd.to_numeric(df[m], errors="coerce").notna().any()]


def summarize(results: pd.DataFrame, metrics: Optional[Sequence[str]] = None, confidence: float = 0.95,
              by: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Mean ± CI over seeds of every per-run metric, per setting (tidy: one row per setting × metric).

    Args:
        results: ``results.csv`` (per-member rows; only the ``ensemble`` rows are used) or one row per run.
        metrics: columns to summarise (default: :data:`RUN_METRICS` and the best student's per-layer ``best_ka_layer*``,
            ``best_erank_ratio_layer*``, ``best_ia_ratio_layer*`` when present).
        confidence: level of the t interval.
        by: grouping columns (default :func:`group_keys`).

    Returns:
        Columns ``*by, metric, runs, mean, std, ci_low, ci_high, ci_half``.
    """
    runs = _run_level(results)
    by = list(by) if by is not None else group_keys(runs)
    rows: List[Dict[str, object]] = []
    for key, group in runs.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for metric in _metrics_present(runs, metrics):
            values = pd.to_numeric(group[metric], errors="coerce").to_numpy(dtype=float)
            mean, std, lo, hi = mean_ci(values, confidence)
            rows.append({**dict(zip(by, key, strict=True)), "metric": metric, "runs": int(np.isfinite(values).sum()),
                         "mean": mean, "std": std, "ci_low": lo, "ci_high": hi, "ci_half": (hi - lo) / 2})
    return pd.DataFrame(rows, columns=[*by, "metric", "runs", "mean", "std", "ci_low", "ci_high", "ci_half"])


def _variant_rank(v: str) -> Tuple[int, str]:
    return (VARIANT_ORDER.index(v) if v in VARIANT_ORDER else len(VARIANT_ORDER), v)


def _paired(a: np.ndarray, b: np.ndarray, confidence: float) -> Dict[str, float]:
    from scipy import stats

    diff = a - b
    mean, _, lo, hi = mean_ci(diff, confidence)
    out = {"mean_diff": mean, "ci_low": lo, "ci_high": hi, "t": np.nan, "p_ttest": np.nan,
           "wilcoxon_stat": np.nan, "p_wilcoxon": np.nan}
    if diff.size >= 2 and np.any(diff != diff[0]):
        res = stats.ttest_rel(a, b)
        out["t"], out["p_ttest"] = float(res.statistic), float(res.pvalue)
    if diff.size >= MIN_WILCOXON_PAIRS and np.any(diff != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "exact p-value unavailable with ties"
            res = stats.wilcoxon(a, b)
        out["wilcoxon_stat"], out["p_wilcoxon"] = float(res.statistic), float(res.pvalue)
    return out


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values of one family (``scipy.stats.false_discovery_control``); NaN
    entries (tests not run) stay NaN and do not count towards the family size.

    Example (m = 3: p_(i) · m / i, made monotone from the top):
        >>> bh_adjust([0.01, float("nan"), 0.04, 0.03]).round(4).tolist()
        [0.03, nan, 0.04, 0.04]
    """
    from scipy import stats

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = stats.false_discovery_control(p[finite], method="bh")
    return out


def paired_tests(results: pd.DataFrame, metrics: Sequence[str] = ("ensemble_auc", "best_student_auc", "gap"),
                 confidence: float = 0.95) -> pd.DataFrame:
    """Paired comparisons of every two recipes at each (dataset, N, ``cfg_*``) over their common seeds.

    ``variant`` is the later recipe in :data:`~collapse_lab.results.collect.VARIANT_ORDER` and ``baseline`` the
    earlier one; ``mean_diff`` is the mean of ``variant − baseline`` over matching seeds, with its t interval,
    the paired t-test (``t``, ``p_ttest``; NaN with fewer than 2 pairs or constant differences) and, with at
    least :data:`MIN_WILCOXON_PAIRS` pairs, the Wilcoxon signed-rank test. ``p_ttest_bh`` and ``p_wilcoxon_bh``
    are those p-values adjusted by Benjamini–Hochberg within each metric's family of tests (:func:`bh_adjust`).
    """
    runs = _run_level(results)
    cols = ["dataset", "n", *sorted(c for c in runs.columns if c.startswith("cfg_")), "metric", "variant",
            "baseline", "pairs", "mean_diff", "ci_low", "ci_high", "t", "p_ttest", "p_ttest_bh", "wilcoxon_stat",
            "p_wilcoxon", "p_wilcoxon_bh"]
    rows: List[Dict[str, object]] = []
    at = cols[: cols.index("metric")]
    for key, group in runs.groupby(at, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        variants = sorted(group["variant"].unique(), key=_variant_rank)
        for baseline, variant in itertools.combinations(variants, 2):
            for metric in _metrics_present(runs, metrics):
                a = group[group["variant"] == variant].groupby("seed")[metric].mean()
                b = group[group["variant"] == baseline].groupby("seed")[metric].mean()
                both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
                stats_ = _paired(both["a"].to_numpy(float), both["b"].to_numpy(float), confidence)
                rows.append({**dict(zip(at, key, strict=True)), "metric": metric, "variant": variant,
                             "baseline": baseline, "pairs": len(both), **stats_})
    out = pd.DataFrame(rows, columns=cols)
    for raw in ("p_ttest", "p_wilcoxon"):  # one family per metric
        out[f"{raw}_bh"] = out.groupby("metric", sort=False)[raw].transform(lambda p: bh_adjust(p.to_numpy()))
    return out
