"""The paper's headline claims C1–C8 (docs/method.md §14) and the embedding-collapse claim C9, measured on a
sweep, with confidence intervals.

Each claim becomes one or more *quantities* — a difference of means with a 95% interval — and a verdict:

* **differences between settings** (e.g. the vanilla ensemble at the largest N minus the single model) use
  Welch's t interval (``scipy.stats.ttest_ind(equal_var=False).confidence_interval``); runs of different
  settings are different models, so they are not paired;
* **differences within the same runs or between recipes at the same N** (layer 1 − last layer of one model;
  KDEF − vanilla at one N) are paired over seeds (Student t interval of the differences).

Verdicts read the interval against the claimed direction: ``supported`` when the whole interval lies on the
claimed side of the threshold, ``contradicted`` when it lies on the other side, ``inconclusive`` otherwise
(including single runs, which have no interval). Thresholds are 0 except where the paper states a size:
"flat" (C1) uses the paper's 0.1-point significance threshold (docs/method.md §14), and "close to uniform"
examination weights (C7) means a relative spread std/mean below 10%. AUC quantities are in AUC points (×100),
KA in percentage points, logloss as is. The single model is vanilla mean fusion at N = 1. The ``note`` column
says where a threshold came from, or what a row shows without testing it.

**C2, the students spread apart.** The best − worst student AUC is a range, and the range of N i.i.d. draws
grows with N by itself (E = d_N σ: 1.13σ at N = 2, 3.08σ at N = 10; :mod:`~collapse_lab.results.dispersion`),
so its trend over N says nothing about collapse. The claim is tested on the within-run standard deviation s of
the student AUCs instead: ln s², less its exact bias ψ((N−1)/2) − ln((N−1)/2), is fitted on log2 N by
weighted least squares with weights 1/ψ'((N−1)/2) (s of 2 students is far noisier than of 10), and the fitted
change is reported as the ratio of the SD at the largest to the smallest N, claimed above 1
(:func:`student_sd_trend`). With i.i.d. normal students it reads "supported" below its nominal rate (2.5%, one
side of a 95% interval; ``tests/test_results_claim_rules.py`` simulates it). The range at the largest N is
shown beside it with its i.i.d. expectation d_N × the mean of s / c4(N) (not tested).

**C5 and C6, one rule.** DML (C5) and KDEF (C6) are read on the same three quantities at their largest N —
ensemble − worst student, the within-run student SD (s / c4) and the gap ensemble − best student — against the
same thresholds, set by the test split's own noise rather than by a Criteo-sized number: τ = 1.96 × SE for the
two AUC differences and τ/√2 for the SD, where SE is the root mean square over the setting's runs (N ≥ 2,
trained student heads) of ``student_auc_diff_se``, DeLong's standard error of a paired difference of two
students' test AUCs (:mod:`collapse_lab.training.delong`). 1.96 × SE is what one paired difference exceeds with
probability 5% from test-set sampling alone; for exchangeable students E[s²] = E[(AUC_a − AUC_b)²]/2, hence
τ/√2 for the SD. Runs collected before the figure was stored have none: then these rows say ``threshold
unavailable`` instead of borrowing a number.

**C7.** Mean λ = 1/N and mean μ = 1/(N − 1) hold by construction (softmin and softmax rows sum to 1), so only
the relative spread std/mean of λ and of μ is evidence.

**Trends over N.** "Rises with N", "flat to declining" and "loses AUC as N grows" are also read as a
least-squares line of the metric on log2 N over every run of the recipe (``stats.slope_ci``, t interval of the
slope), reported as the fitted change from the smallest to the largest N (slope × log2(N_max/N_min)) so that
the same thresholds apply as to the largest-N comparisons. C1 starts at the single model (N = 1, as the
paper's 1x → 10x statement); the other trends start at N = 2, as the paper states them ("81.53 (2x) → 81.60
(10x)"): the single model at x = 0 would otherwise dominate the fit and repeat the largest-N-vs-single test.
The largest-N comparisons use two settings only; the lines use all of them.

**C9, knowledge transfer narrows the shared embedding** (not a claim of the paper: it is the embedding collapse
of Guo et al., "On the Embedding Collapse when Scaling up Recommendation Models", ICML 2024, read on the shared
embedding of arXiv 2411.16122 §III). Each run's shared embedding tables are measured against same-shape Gaussian
tables of equal Frobenius norm: ``emb_ia_ratio_mean`` = the mean over fields of IA(E_f)/IA(G_f) and
``emb_erank_ratio_mean`` = the same for the effective rank (docs/metrics.md §1, §3; 1 = as spread out as
random, lower = fewer directions used). For every knowledge-transfer recipe (KD, DML, KDEF and KDEF's ablations)
C9 reads (i) the fitted change of the ratio over N ≥ 2 (OLS on log2 N, as the AUC trends; claimed below 0) and
(ii) recipe − vanilla-mean at the recipe's largest N, paired over seeds (claimed below 0) and, when the runs
recorded ``spectra_trace.csv``, (iii) the same paired difference of the change over training
(``emb_*_ratio_change``: last recorded step − initialisation). The vanilla-mean line is shown beside them, not
tested: the same change without knowledge transfer.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.results.collect import layer_columns
from collapse_lab.results.dispersion import c4, expected_range, log_variance_bias, log_variance_variance
from collapse_lab.results.stats import mean_ci, slope_ci
from collapse_lab.results.tables import UNTRAINED_STUDENT_HEADS

__all__ = ["CLAIMS", "EMBEDDING_MEASURES", "TRANSFER_RECIPES", "evaluate_claims", "format_claims", "welch_ci",
           "student_sd_trend", "noise_threshold",
           "NoiseThreshold"]

#: claim id -> the statement being tested (docs/method.md §14, shortened)
CLAIMS: Dict[str, str] = {
    "C1": "The vanilla mean ensemble does not scale: ensemble AUC is flat to declining in N",
    "C2": "Vanilla sub-networks collapse: the best student loses AUC as N grows; the ensemble-best gap is positive;"
          " the students spread apart",
    "C3": "KA falls with depth and with N; KDEF raises the best student's KA (also read scale-free: effective rank "
          "and IA over a Gaussian's)",
    "C4": "KD with the mean-logit teacher makes ensemble AUC rise with N",
    "C5": "DML keeps the students within noise of each other and of the ensemble (paper: within 0.1 AUC points)",
    "C6": "KDEF: ensemble AUC rises with N, every student beats the single model, students within noise of the "
          "ensemble (paper: gap < 0.1 AUC points)",
    "C7": "The examination-mechanism weights are close to uniform (relative spread std/mean < 10%)",
    "C8": "Logloss is sometimes worse with knowledge transfer (KDEF vs vanilla mean at the same N)",
    "C9": "Knowledge transfer narrows the shared embedding: its IA and effective rank relative to a same-shape "
          "Gaussian fall with N and lie below vanilla mean's at the same N (Guo et al. 2024; not the paper's)",
}
#: the per-run embedding measures C9 reads (column, label), when results.csv has them
EMBEDDING_MEASURES = (("emb_ia_ratio_mean", "embedding IA / Gaussian"),
                      ("emb_erank_ratio_mean", "embedding effective rank / Gaussian"))
#: recipes that transfer knowledge between students (C9), in this order when present
TRANSFER_RECIPES = ("kd", "dml", "kdef", "kdef-kd-only", "kdef-dml-only", "kdef-uniform", "kdef-noem")
FLAT = 0.1  # AUC points: the paper's significance threshold
UNIFORM = 0.10  # relative spread std/mean of the EM weights counted as "close to uniform"
NOISE_Z = 1.96  # noise thresholds are NOISE_Z × the pooled SE of a paired student AUC difference
UNAVAILABLE = "threshold unavailable"


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
    if math.isnan(threshold):
        return UNAVAILABLE
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if side == "above":
        return "supported" if lo > threshold else "contradicted" if hi < threshold else "inconclusive"
    return "supported" if hi < threshold else "contradicted" if lo > threshold else "inconclusive"


def _row(claim: str, quantity: str, unit: str, est: tuple, runs: str, side: str, threshold: float = 0.0,
         scale: float = 1.0, note: str = "") -> Dict[str, object]:
    diff, lo, hi = (v * scale for v in est)
    sign = ">" if side == "above" else "<"
    rule = f"{sign} τ (unavailable)" if math.isnan(threshold) else f"{sign} {threshold:.3g}"
    return {"claim": claim, "quantity": quantity, "unit": unit, "estimate": diff, "ci_low": lo, "ci_high": hi,
            "runs": runs, "rule": rule, "verdict": _verdict(lo, hi, side, threshold), "note": note}


@dataclass(frozen=True)
class NoiseThreshold:
    """The pooled noise figure of a setting: ``se`` (AUC units, NaN when no run has it) over ``runs`` of
    ``eligible`` runs (N ≥ 2, trained student heads)."""

    se: float
    runs: int
    eligible: int

    def diff(self) -> float:
        """τ for a difference of two AUCs, in AUC points."""
        return NOISE_Z * self.se * 100

    def sd(self) -> float:
        """τ for the within-run student SD, in AUC points (τ / √2)."""
        return self.diff() / math.sqrt(2.0)

    def note(self, which: str) -> str:
        if math.isnan(self.se):
            return (f"no noise figure: none of the {self.eligible} runs stores student_auc_diff_se (collected "
                    "before it was recorded; rerun the sweep)")
        factor = f"{NOISE_Z:g} × SE" + (" / √2" if which == "sd" else "")
        return (f"τ = {factor}, SE = {100 * self.se:.3f} AUC points = RMS of student_auc_diff_se (DeLong SE of a "
                f"paired student AUC difference on the test split) over {self.runs} of {self.eligible} runs")


def noise_threshold(runs: pd.DataFrame) -> NoiseThreshold:
    """Pool ``student_auc_diff_se`` (root mean square) over the runs with N ≥ 2 whose students have trained
    heads (not :data:`~collapse_lab.results.tables.UNTRAINED_STUDENT_HEADS`)."""
    eligible = runs[(runs["n"] >= 2) & ~runs["variant"].isin(UNTRAINED_STUDENT_HEADS)]
    if "student_auc_diff_se" not in eligible:
        return NoiseThreshold(math.nan, 0, len(eligible))
    se = pd.to_numeric(eligible["student_auc_diff_se"], errors="coerce").dropna().to_numpy(float)
    return NoiseThreshold(float(np.sqrt(np.mean(se ** 2))) if se.size else math.nan, int(se.size), len(eligible))


def student_sd_trend(n: Sequence[float], sd: Sequence[float],
                     confidence: float = 0.95) -> Tuple[float, float, float, int, List[int]]:
    """The fitted ratio of the within-run student AUC SD at the largest to the smallest N (C2).

    Each run's SD ``s`` (ddof = 1) of its ``n`` students becomes y = ln s² − (ψ(h) − ln h), h = (n − 1)/2, an
    unbiased estimate of ln σ² for normal students, and y is fitted on log2 n by weighted least squares with
    weights 1/ψ'(h) = 1/Var(y) (:func:`stats.slope_ci`; :mod:`~collapse_lab.results.dispersion`). Runs with
    n < 2 or s = 0 are left out. Returns ``(ratio, low, high, k, Ns)``: exp(slope × log2(N_max/N_min) / 2),
    the SD ratio implied by the line, with its interval, the k runs used and the sorted distinct N.

    Example (SDs that double from N = 2 to N = 8 after the bias correction):
        >>> import math
        >>> from collapse_lab.results.dispersion import log_variance_bias as b
        >>> sds = [math.exp(b(n) / 2) * s for n, s in ((2, 1.0), (2, 1.0), (4, 1.414213562), (8, 2.0))]
        >>> ratio, lo, hi, k, ns = student_sd_trend([2, 2, 4, 8], sds)
        >>> round(ratio, 6), k, ns
        (2.0, 4, [2, 4, 8])
    """
    ns = np.asarray(n, dtype=float)
    values = np.asarray(sd, dtype=float)
    keep = (ns >= 2) & np.isfinite(values) & (values > 0)
    ns, values = ns[keep], values[keep]
    distinct = sorted({int(v) for v in ns})
    if len(distinct) < 2:
        return np.nan, np.nan, np.nan, int(ns.size), distinct
    y = 2.0 * np.log(values) - np.array([log_variance_bias(int(v)) for v in ns])
    weights = 1.0 / np.array([log_variance_variance(int(v)) for v in ns])
    slope, lo, hi, k = slope_ci(np.log2(ns), y, confidence, weights=weights)
    span = math.log2(distinct[-1] / distinct[0])
    return tuple(math.exp(v * span / 2) for v in (slope, lo, hi)) + (k, distinct)


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
    if "student_auc_sd" in runs.columns:
        factors = runs["n"].map(lambda v: c4(int(v)) if v >= 2 else np.nan)
        runs = runs.assign(student_sd_c4=pd.to_numeric(runs["student_auc_sd"], errors="coerce") / factors)
    rows: List[Dict[str, object]] = []
    single = "vanilla-mean"
    noise = noise_threshold(runs)

    def vs_single(claim: str, variant: str, column: str, label: str, side: str, threshold: float = 0.0) -> None:
        n = _largest_n(runs, variant)
        a, b = _values(runs, variant, n, column), _values(runs, single, 1, "ensemble_auc")
        if n is None or a.empty or b.empty:
            return
        rows.append(_row(claim, f"{label} ({variant}, N={n}) − single model AUC", "AUC points",
                         welch_ci(a, b, confidence), f"{a.notna().sum()} vs {b.notna().sum()}", side, threshold, 100))

    def level(claim: str, variant: str, column: str, label: str, unit: str, side: str, threshold: float,
              scale: float, note: str = "") -> None:
        n = _largest_n(runs, variant)
        values = _values(runs, variant, n, column)
        if n is None or values.dropna().empty:
            return
        mean, _, lo, hi = mean_ci(values.to_numpy(float), confidence)
        rows.append(_row(claim, f"{label} ({variant}, N={n})", unit, (mean, lo, hi), str(values.notna().sum()),
                         side, threshold, scale, note))

    def within_noise(claim: str, variant: str) -> None:
        """The same three quantities against the same noise thresholds, for DML (C5) and KDEF (C6)."""
        level(claim, variant, "worst_gap", "ensemble − worst student AUC", "AUC points", "below", noise.diff(), 100,
              noise.note("diff"))
        level(claim, variant, "student_sd_c4", "student AUC SD within a run (s/c4)", "AUC points", "below",
              noise.sd(), 100, noise.note("sd"))
        level(claim, variant, "gap", "ensemble − best student AUC", "AUC points", "below", noise.diff(), 100,
              noise.note("diff"))

    def spread(variant: str) -> None:
        """C2: the SD trend over N (tested) and, beside it, the range at the largest N with its i.i.d. value."""
        if "student_sd_c4" not in runs:
            return
        sub = runs[runs["variant"] == variant]
        ratio, lo, hi, k, ns = student_sd_trend(sub["n"], sub["student_auc_sd"], confidence)
        if len(ns) >= 2:
            rows.append(_row("C2", f"student AUC SD within a run, fitted ratio N={ns[-1]} / N={ns[0]} "
                                   f"({variant}, N={','.join(map(str, ns))}; WLS of bias-corrected ln s² on "
                                   "log2 N)", "ratio", (ratio, lo, hi), str(k), "above", 1.0, 1.0,
                             "the range is not tested: it grows with N even for i.i.d. students"))
        n = _largest_n(runs, variant)
        ranges, sds = _values(runs, variant, n, "spread"), _values(runs, variant, n, "student_sd_c4")
        if n is None or ranges.dropna().empty or sds.dropna().empty:
            return
        mean, _, lo, hi = mean_ci(ranges.to_numpy(float), confidence)
        d, sd = expected_range(n), float(sds.mean())
        rows.append({**_row("C2", f"best − worst student AUC ({variant}, N={n})", "AUC points", (mean, lo, hi),
                            str(ranges.notna().sum()), "above", 0.0, 100),
                     "rule": "not tested", "verdict": "not tested",
                     "note": f"i.i.d. expectation d_{n} × SD = {d:.3f} × {100 * sd:.3f} = {100 * d * sd:.3f} AUC "
                             "points (SD = mean s/c4 of the same runs)"})

    def trend(claim: str, variant: str, column: str, label: str, side: str, threshold: float = 0.0,
              min_n: int = 1, unit: str = "AUC points", scale: float = 100.0) -> Optional[Dict[str, object]]:
        points = _trend_points(runs, variant, column, min_n)
        if points["n"].nunique() < 2:  # a slope needs two settings of N
            return None
        slope, lo, hi, k = slope_ci(np.log2(points["n"]), points["value"], confidence)
        ns = sorted(int(v) for v in points["n"].unique())
        span = math.log2(ns[-1] / ns[0])  # the fitted change over the whole range, comparable with `threshold`
        rows.append(_row(claim, f"{label}, fitted change N={ns[0]}→{ns[-1]} ({variant}, N={','.join(map(str, ns))}; "
                                f"OLS on log2 N)", unit, (slope * span, lo * span, hi * span), str(k), side,
                         threshold, scale))
        return rows[-1]

    def narrows(column: str, label: str) -> None:
        """C9 on one embedding measure: the trend of every knowledge-transfer recipe and its paired difference
        to vanilla-mean at its largest N; vanilla-mean's own trend as an untested reference."""
        if column not in runs or pd.to_numeric(runs[column], errors="coerce").isna().all():
            return
        reference = trend("C9", single, column, label, "below", min_n=2, unit="ratio", scale=1.0)
        if reference is not None:
            reference.update(rule="not tested", verdict="not tested",
                             note="reference: the same line without knowledge transfer")
        for variant in [v for v in TRANSFER_RECIPES if (runs["variant"] == v).any()]:
            trend("C9", variant, column, label, "below", min_n=2, unit="ratio", scale=1.0)
            n = _largest_n(runs, variant)
            if n is None:
                continue
            mean, lo, hi, k = _paired(_values(runs, variant, n, column), _values(runs, single, n, column),
                                      confidence)
            if k:
                rows.append(_row("C9", f"{label}, {variant} − vanilla-mean (N={n})", "ratio", (mean, lo, hi),
                                 str(k), "below", 0.0))
            change = column.replace("_mean", "_change")  # over training, from spectra_trace.csv
            if change in runs:
                mean, lo, hi, k = _paired(_values(runs, variant, n, change), _values(runs, single, n, change),
                                          confidence)
                if k:
                    rows.append(_row("C9", f"{label}, change over training (last step − initialisation), {variant} "
                                           f"− vanilla-mean (N={n})", "ratio", (mean, lo, hi), str(k), "below", 0.0))

    vs_single("C1", single, "ensemble_auc", "ensemble AUC", "below", FLAT)
    trend("C1", single, "ensemble_auc", "ensemble AUC", "below", FLAT)
    vs_single("C2", single, "best_student_auc", "best student AUC", "below")
    trend("C2", single, "best_student_auc", "best student AUC", "below", min_n=2)
    level("C2", single, "gap", "ensemble − best student AUC", "AUC points", "above", 0.0, 100)
    trend("C2", single, "gap", "ensemble − best student AUC", "above", min_n=2)
    spread(single)
    for measure, label, unit, scale in (("ka", "KA", "KA points (%)", 100.0),
                                        ("erank_ratio", "effective rank / Gaussian", "ratio", 1.0),
                                        ("ia_ratio", "IA / Gaussian", "ratio", 1.0)):
        rows += _layer_rows(runs, measure, label, unit, scale, confidence)
    vs_single("C4", "kd", "ensemble_auc", "ensemble AUC", "above")
    trend("C4", "kd", "ensemble_auc", "ensemble AUC", "above", min_n=2)
    within_noise("C5", "dml")
    vs_single("C6", "kdef", "ensemble_auc", "ensemble AUC", "above")
    trend("C6", "kdef", "ensemble_auc", "ensemble AUC", "above", min_n=2)
    vs_single("C6", "kdef", "worst_student_auc", "worst student AUC", "above")
    within_noise("C6", "kdef")
    for weight, symbol in (("lambda", "λ"), ("mu", "μ")):  # the means are 1/N and 1/(N-1) by construction
        if not {f"{weight}_std", f"{weight}_mean"} <= set(runs.columns):
            continue
        kdef = runs[runs["variant"] == "kdef"]
        rel = (pd.to_numeric(kdef[f"{weight}_std"], errors="coerce")
               / pd.to_numeric(kdef[f"{weight}_mean"], errors="coerce"))
        n = _largest_n(runs, "kdef")
        values = rel[kdef["n"] == n] if n is not None else rel.iloc[:0]
        if not values.dropna().empty:
            mean, _, lo, hi = mean_ci(values.to_numpy(float), confidence)
            rows.append(_row("C7", f"relative spread std/mean of {symbol} (kdef, N={n})", "ratio", (mean, lo, hi),
                             str(values.notna().sum()), "below", UNIFORM))
    for n in sorted(set(runs.loc[runs["variant"] == "kdef", "n"])):
        mean, lo, hi, k = _paired(_values(runs, "kdef", int(n), "ensemble_logloss"),
                                  _values(runs, single, int(n), "ensemble_logloss"), confidence)
        if k:
            rows.append(_row("C8", f"ensemble logloss, kdef − vanilla-mean (N={int(n)})", "logloss",
                             (mean, lo, hi), str(k), "above", 0.0))
    for column, label in EMBEDDING_MEASURES:
        narrows(column, label)
    columns = ["claim", "statement", "quantity", "unit", "estimate", "ci_low", "ci_high", "runs", "rule", "verdict",
               "note"]
    out = pd.DataFrame(rows, columns=[c for c in columns if c != "statement"])
    out.insert(1, "statement", out["claim"].map(CLAIMS))
    return out


def format_claims(claims: pd.DataFrame, digits: int = 3, confidence: float = 0.95) -> str:
    """A Markdown table of :func:`evaluate_claims` (estimate [CI at ``confidence``], verdict, note)."""
    lines = [f"| claim | quantity | estimate [{100 * confidence:g}% CI] | runs | claimed | verdict | note |",
             "|---|---|---|---|---|---|---|"]
    for r in claims.itertuples(index=False):
        ci = "" if math.isnan(r.ci_low) else f" [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]"
        note = getattr(r, "note", "")
        note = "" if not isinstance(note, str) else note
        lines.append(f"| {r.claim} | {r.quantity} ({r.unit}) | {r.estimate:.{digits}f}{ci} | {r.runs} | {r.rule} "
                     f"| {r.verdict} | {note} |")
    return "\n".join(lines)
