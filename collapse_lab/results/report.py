"""Write a sweep's result tables (``results.csv``, ``summary.csv``, ``paired_tests.csv``, ``claims.csv``) and
format them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import pandas as pd

from collapse_lab.io.atomic import atomic_write_text
from collapse_lab.results.claims import evaluate_claims
from collapse_lab.results.collect import VARIANT_ORDER, SweepResults, collect_results
from collapse_lab.results.stats import paired_tests, summarize

__all__ = ["ResultsReport", "write_results", "format_summary", "format_value"]


@dataclass
class ResultsReport:
    """The tables of a sweep and where they were written."""

    collected: SweepResults
    summary: pd.DataFrame
    paired: pd.DataFrame
    claims: pd.DataFrame
    paths: Dict[str, Path] = field(default_factory=dict)

    @property
    def skipped(self) -> List[Tuple[str, str]]:
        return self.collected.skipped

    def to_json(self) -> Dict[str, Any]:
        """A JSON-able dict (NaN -> null) for ``collapse-lab results --json``."""
        def records(df: pd.DataFrame) -> List[Dict[str, Any]]:
            return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                    for r in df.astype(object).to_dict(orient="records")]

        return {"sweep_id": self.collected.sweep_id, "sweep_dir": str(self.collected.sweep_dir),
                "runs": int(self.collected.runs().shape[0]),
                "skipped": [{"run": r, "reason": why} for r, why in self.skipped],
                "files": {k: str(v) for k, v in self.paths.items()},
                "summary": records(self.summary), "paired_tests": records(self.paired),
                "claims": records(self.claims)}


def write_results(sweep_dir: Union[str, Path], out_dir: Optional[Union[str, Path]] = None,
                  confidence: float = 0.95, progress: Optional[bool] = None) -> ResultsReport:
    """Collect a sweep and write ``results.csv``, ``summary.csv``, ``paired_tests.csv`` and ``claims.csv``
    (atomically). ``claims.csv`` holds :func:`~collapse_lab.results.claims.evaluate_claims` per dataset.

    Args:
        sweep_dir: the sweep (or a directory of runs).
        out_dir: where the tables go (default: ``sweep_dir``).
        confidence: level of the t intervals.
        progress: tqdm while reading runs (``None``: only on a terminal).

    Raises:
        UserError: no finished run in ``sweep_dir``.
    """
    if not 0.0 < confidence < 1.0:
        from collapse_lab.errors import UserError

        raise UserError(f"--confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")
    collected = collect_results(sweep_dir, progress=progress)
    summary = summarize(collected.results, confidence=confidence)
    paired = paired_tests(collected.results, confidence=confidence)
    # claims compare recipes at one setting: evaluate them per dataset and per combination of the other
    # config keys the sweep varies (cfg_* columns), never pooling e.g. the exam=false ablation with KDEF
    keys = ["dataset", *sorted(c for c in collected.results.columns if c.startswith("cfg_"))]
    per_setting = []
    for values, df in collected.results.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        per_setting.append(evaluate_claims(df, confidence).assign(**dict(zip(keys, values, strict=True))))
    claims = pd.concat(per_setting, ignore_index=True)
    claims = claims[[*keys, *[c for c in claims.columns if c not in keys]]]
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir)
    report = ResultsReport(collected, summary, paired, claims)
    for stem, df in (("results", collected.results), ("summary", summary), ("paired_tests", paired),
                     ("claims", claims)):
        path = out / f"{stem}.csv"
        atomic_write_text(path, df.to_csv(index=False, float_format="%.10g"))
        report.paths[stem] = path
    return report


def format_value(mean: float, lo: float, hi: float, digits: int = 4) -> str:
    """``mean ± half-width`` (or just the mean when the interval is undefined).

    Example:
        >>> format_value(0.78123, 0.77, 0.79), format_value(0.5, float("nan"), float("nan"))
        ('0.7812 ± 0.0100', '0.5000')
    """
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def format_summary(summary: pd.DataFrame, metric: str = "ensemble_auc") -> str:
    """A text table of one metric: rows (dataset, variant), columns N, cells ``mean ± 95% CI half-width``."""
    df = summary[summary["metric"] == metric]
    if df.empty:
        return f"(no {metric} values)"
    extra = sorted(c for c in df.columns if c.startswith("cfg_"))
    row_keys = ["dataset", "variant", *extra]
    cells = df.assign(cell=[format_value(m, lo, hi) + f" (n={r})" for m, lo, hi, r in
                            zip(df["mean"], df["ci_low"], df["ci_high"], df["runs"], strict=True)])
    table = cells.pivot_table(index=row_keys, columns="n", values="cell", aggfunc="first")
    order = {v: i for i, v in enumerate(VARIANT_ORDER)}
    table = table.sort_index(key=lambda idx: idx.map(lambda v: order.get(v, len(order)))
                             if idx.name == "variant" else idx)
    table.columns = [f"N={c}" for c in table.columns]
    table = table.fillna("")
    return f"{metric} (test; mean ± 95% CI half-width over seeds, n = runs)\n" + table.to_string()
