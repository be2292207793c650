"""Write a sweep's result tables (``results.csv``, ``summary.csv``, ``paired_tests.csv``, ``claims.csv`` and
their Markdown rendering ``results.md``) and format them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import pandas as pd

from collapse_lab.io.atomic import atomic_write_text
from collapse_lab.results.claims import evaluate_claims, format_claims
from collapse_lab.results.collect import SweepResults, collect_results, read_results_csv
from collapse_lab.results.markdown import format_value, results_markdown, summary_pivot
from collapse_lab.results.paper_tables import paper_tables_for
from collapse_lab.results.stats import paired_tests, summarize

__all__ = ["ResultsReport", "write_results", "format_summary", "format_value", "claims_markdown"]


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
                  confidence: float = 0.95, progress: Optional[bool] = None,
                  sweep_id: Optional[str] = None) -> ResultsReport:
    """Collect a sweep and write ``results.csv``, ``summary.csv``, ``paired_tests.csv``, ``claims.csv`` and
    ``results.md`` (atomically). ``claims.csv`` holds :func:`~collapse_lab.results.claims.evaluate_claims` per
    dataset; ``results.md`` renders the summary, the main paired tests and the claims as Markdown. Where the sweep
    holds rows of the paper's Table V or VI (:mod:`collapse_lab.results.paper_tables`), ``table5.{csv,md}`` /
    ``table6.{csv,md}`` put them beside the paper's numbers.

    Args:
        sweep_dir: the sweep (or a directory of runs), or a ``results.csv`` written earlier: the statistics are
            then recomputed from it (:func:`~collapse_lab.results.collect.read_results_csv`), e.g. for committed
            tables whose run directories are gone.
        out_dir: where the tables go (default: ``sweep_dir``, or the directory of the ``results.csv``).
        confidence: level of the t intervals.
        progress: tqdm while reading runs (``None``: only on a terminal).
        sweep_id: the id named in ``results.md`` when reading a ``results.csv`` (default: its directory name).

    Raises:
        UserError: no finished run in ``sweep_dir``.
    """
    if not 0.0 < confidence < 1.0:
        from collapse_lab.errors import UserError

        raise UserError(f"--confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")
    if Path(sweep_dir).is_file():
        collected = read_results_csv(sweep_dir, sweep_id)
        sweep_dir = Path(sweep_dir).parent
    else:
        collected = collect_results(sweep_dir, progress=progress)
    summary = summarize(collected.results, confidence=confidence)
    paired = paired_tests(collected.results, confidence=confidence)
    # claims compare recipes at one setting: evaluate them per dataset and per combination of the other
    # config keys the sweep varies (cfg_* columns); ablations such as exam=false are recipes of their own
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
    text = results_markdown(collected.sweep_id, int(collected.runs().shape[0]), collected.skipped, summary, paired,
                            claims_markdown(claims, confidence), confidence)
    report.paths["markdown"] = out / "results.md"
    atomic_write_text(report.paths["markdown"], text)
    for stem, (markdown, table) in paper_tables_for(collected.results, confidence).items():
        atomic_write_text(out / f"{stem}.csv", table.to_csv(index=False, float_format="%.10g"))
        report.paths[stem] = out / f"{stem}.md"
        atomic_write_text(report.paths[stem], markdown)
    return report


def format_summary(summary: pd.DataFrame, metric: str = "ensemble_auc") -> str:
    """A text table of one metric: rows (dataset, variant), columns N, cells ``mean ± 95% CI half-width``."""
    table = summary_pivot(summary, metric)
    if table.empty:
        return f"(no {metric} values)"
    return f"{metric} (test; mean ± 95% CI half-width over seeds, n = runs)\n" + table.to_string()


def claims_markdown(claims: pd.DataFrame, confidence: float = 0.95) -> str:
    """:func:`~collapse_lab.results.claims.format_claims` per setting (dataset and varying ``cfg_*`` keys)."""
    keys = [c for c in claims.columns if c == "dataset" or c.startswith("cfg_")]
    if claims.empty:
        return ""
    if not keys:
        return format_claims(claims, confidence=confidence)
    parts = []
    for values, df in claims.groupby(keys, sort=False, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        setting = ", ".join(f"{k.removeprefix('cfg_')} = {v}" for k, v in zip(keys, values, strict=True))
        parts.append(f"{setting}:\n\n{format_claims(df, confidence=confidence)}")
    return "\n\n".join(parts)
