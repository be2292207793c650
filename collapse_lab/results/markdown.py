"""``results.md``: a sweep's summary, paired tests and claims as Markdown tables.

The same numbers as ``summary.csv``, ``paired_tests.csv`` and ``claims.csv`` (written from the same data
frames in the same call), rounded for reading, so that a report such as ``REPRODUCTION.md`` can quote them
and be checked against them. Cells are ``mean ± half-width`` of the t interval over seeds (just the mean for a
single run); paired differences are in AUC points (×100) with their interval, raw p-values and
Benjamini–Hochberg adjusted p-values (one family per metric, :func:`collapse_lab.results.stats.bh_adjust`).
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional, Sequence, Tuple

import pandas as pd

from collapse_lab.results.collect import VARIANT_ORDER
from collapse_lab.results.tables import CAPACITY_CONTROL, KDEF_ABLATIONS

__all__ = ["SUMMARY_METRICS", "format_value", "summary_pivot", "markdown_table",
           "default_comparisons", "paired_markdown", "results_markdown"]

#: (metric, caption) of the per-N tables of results.md, in order
SUMMARY_METRICS: Tuple[Tuple[str, str], ...] = (
    ("ensemble_auc", "Ensemble test AUC"),
    ("best_student_auc", "Best student test AUC"),
    ("worst_student_auc", "Worst student test AUC"),
    ("gap", "Ensemble − best student test AUC"),
    ("spread", "Best − worst student test AUC"),
    ("student_auc_sd", "Standard deviation of the student test AUCs within a run (ddof = 1)"),
    ("student_auc_diff_se", "Noise: DeLong SE of a paired student test AUC difference (RMS over pairs)"),
    ("ensemble_logloss", "Ensemble test logloss"),
)


def format_value(mean: float, lo: float, hi: float, digits: int = 4) -> str:
    """``mean ± half-width`` (or just the mean when the interval is undefined).

    Example:
        >>> format_value(0.78123, 0.77, 0.79), format_value(0.5, float("nan"), float("nan"))
        ('0.7812 ± 0.0100', '0.5000')
    """
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def _variant_order(index: pd.Index) -> pd.Index:
    order = {v: i for i, v in enumerate(VARIANT_ORDER)}
    return index.map(lambda v: order.get(v, len(order))) if index.name == "variant" else index


def summary_pivot(summary: pd.DataFrame, metric: str, with_runs: bool = True, digits: int = 4) -> pd.DataFrame:
    """One metric of ``summary.csv`` as a table: rows (dataset, variant, cfg_*), columns ``N=<n>``.

    Cells are :func:`format_value` strings, followed by `` (n=<runs>)`` when ``with_runs``; empty where a recipe
    has no runs at that N or no value there (e.g. the student SD of the single model). An empty frame when the
    metric is absent.
    """
    df = summary[(summary["metric"] == metric) & (summary["runs"] > 0)]
    if df.empty:
        return pd.DataFrame()
    row_keys = ["dataset", "variant", *sorted(c for c in df.columns if c.startswith("cfg_"))]
    cells = [format_value(m, lo, hi, digits) + (f" (n={r})" if with_runs else "")
             for m, lo, hi, r in zip(df["mean"], df["ci_low"], df["ci_high"], df["runs"], strict=True)]
    table = df.assign(cell=cells).pivot_table(index=row_keys, columns="n", values="cell", aggfunc="first")
    table = table.sort_index(key=_variant_order)
    table.columns = [f"N={c}" for c in table.columns]
    return table.fillna("")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub pipe table of a frame: its index levels, then its columns (``|`` in cells escaped).

    Example:
        >>> print(markdown_table(pd.DataFrame({"N=1": ["0.78"]}, index=pd.Index(["kd"], name="variant"))))
        | variant | N=1 |
        |---|---|
        | kd | 0.78 |
    """
    flat = df.reset_index() if any(name is not None for name in df.index.names) else df

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in flat.columns) + " |", "|" + "---|" * len(flat.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in flat.itertuples(index=False)]
    return "\n".join(lines)


def _p(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def default_comparisons() -> List[Tuple[str, str]]:
    """The ``(variant, baseline)`` pairs results.md shows: the baselines and the paper's methods against
    vanilla-mean, KDEF against KD and DML, KDEF against the capacity-matched single model (one student with the
    parameters of N, compared at N = K), and each KDEF ablation against KDEF (the part it removes is worth
    ``kdef − ablation``; paired_tests.csv holds the pair as ``ablation − kdef``)."""
    paper = [v for v in VARIANT_ORDER[1:] if v not in KDEF_ABLATIONS]
    return ([(v, "vanilla-mean") for v in paper] + [("kdef", "kd"), ("kdef", "dml"),
                                                    ("kdef", CAPACITY_CONTROL)]
            + [(v, "kdef") for v in KDEF_ABLATIONS])


def paired_markdown(paired: pd.DataFrame, metric: str = "ensemble_auc",
                    comparisons: Optional[Iterable[Tuple[str, str]]] = None, confidence: float = 0.95) -> str:
    """Paired differences of one metric as a Markdown table (AUC points for AUC metrics).

    ``comparisons`` are ``(variant, baseline)`` pairs to keep (default: :func:`default_comparisons`).
    """
    df = paired[paired["metric"] == metric]
    if comparisons is None:
        comparisons = default_comparisons()
    wanted = list(comparisons)
    df = df[[(v, b) in wanted for v, b in zip(df["variant"], df["baseline"], strict=True)]]
    if df.empty:
        return ""
    scale = 100.0 if metric.endswith("auc") or metric in ("gap", "spread", "student_auc_sd") else 1.0
    unit = "AUC points" if scale == 100.0 else metric
    settings = sorted(c for c in df.columns if c.startswith("cfg_"))
    rows = []
    for _, r in df.sort_values(["dataset", *settings, "n"], kind="stable").iterrows():
        ci = "" if math.isnan(r["ci_low"]) else f" [{scale * r['ci_low']:+.2f}, {scale * r['ci_high']:+.2f}]"
        rows.append({"dataset": r["dataset"], **{c.removeprefix("cfg_"): r[c] for c in settings}, "N": int(r["n"]),
                     "comparison": f"{r['variant']} − {r['baseline']}", "pairs": int(r["pairs"]),
                     f"mean difference ({unit}) [{100 * confidence:g}% CI]": f"{scale * r['mean_diff']:+.2f}{ci}",
                     "p (paired t)": _p(r["p_ttest"]), "p (paired t, BH)": _p(r.get("p_ttest_bh", float("nan"))),
                     "p (Wilcoxon)": _p(r["p_wilcoxon"]), "p (Wilcoxon, BH)": _p(r.get("p_wilcoxon_bh", float("nan")))})
    return markdown_table(pd.DataFrame(rows))


def results_markdown(sweep_id: str, runs: int, skipped: Sequence[Tuple[str, str]], summary: pd.DataFrame,
                     paired: pd.DataFrame, claims_text: str, confidence: float = 0.95) -> str:
    """The whole ``results.md``: per-N tables of :data:`SUMMARY_METRICS`, paired tests, claims."""
    level = f"{100 * confidence:g}%"
    out: List[str] = [f"# Results of sweep `{sweep_id}`", "",
                      f"{runs} finished runs ({len(skipped)} skipped). Test-set metrics; cells are the mean over "
                      f"seeds ± the half-width of its {level} Student t interval, n = runs (seeds). Written by "
                      "`collapse-lab results` together with summary.csv, paired_tests.csv and claims.csv.", ""]
    for metric, caption in SUMMARY_METRICS:
        table = summary_pivot(summary, metric)
        if not table.empty:
            out += [f"## {caption}", "", markdown_table(table), ""]
    text = paired_markdown(paired, confidence=confidence)
    if text:
        out += ["## Paired differences of ensemble test AUC (same seeds)", "",
                "Every recipe against vanilla mean fusion, KDEF against KD, DML and the capacity-matched single "
                "model, and each KDEF ablation against KDEF, at each N; all pairs of "
                "recipes and the student metrics are in paired_tests.csv. BH: p-values adjusted by "
                "Benjamini–Hochberg over every test of the metric in paired_tests.csv (one family per metric).",
                "", text, ""]
    if claims_text:
        out += ["## Claims C1–C9 (docs/method.md §14; C9: embedding collapse)", "", claims_text, ""]
    if skipped:
        out += ["## Skipped runs", ""] + [f"- `{run}`: {why}" for run, why in skipped] + [""]
    return "\n".join(out)
