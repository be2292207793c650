"""Results of sweeps: tidy tables of finished runs, statistics over seeds, and the claims table."""

from __future__ import annotations

from collapse_lab.results.claims import CLAIMS, evaluate_claims, format_claims
from collapse_lab.results.collect import VARIANT_ORDER, SweepResults, collect_results, load_results, variant_name
from collapse_lab.results.narrative import Prose, describe_claims, describe_vs_n, select_recipes
from collapse_lab.results.stats import mean_ci, paired_tests, summarize
from collapse_lab.results.writer import ResultsReport, format_summary, write_results

__all__ = [
    "CLAIMS",
    "evaluate_claims",
    "format_claims",
    "VARIANT_ORDER",
    "SweepResults",
    "collect_results",
    "load_results",
    "variant_name",
    "Prose",
    "describe_claims",
    "describe_vs_n",
    "select_recipes",
    "ResultsReport",
    "format_summary",
    "write_results",
    "mean_ci",
    "paired_tests",
    "summarize",
]
