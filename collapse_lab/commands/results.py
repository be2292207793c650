"""``collapse-lab results SWEEP_DIR``: tidy results, mean ± 95% CI over seeds, paired tests
(library: :func:`collapse_lab.results.writer.write_results`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

__all__ = ["results_command"]


@click.command("results")
@click.argument("sweep_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the result tables go (default: SWEEP_DIR).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and paired tests as JSON.")
@click.option("--confidence", type=float, default=0.95, show_default=True, help="Level of the t intervals.")
@click.option("--claims", "show_claims", is_flag=True, help="Also print the claims C1-C8 as a Markdown table.")
@click.option("--sweep-id", default=None,
              help="Sweep id named in results.md when SWEEP_DIR is a results.csv (default: its directory name).")
def results_command(sweep_dir: Path, out_dir: Optional[Path], as_json: bool, confidence: float,
                    show_claims: bool, sweep_id: Optional[str]) -> None:
    """Collect the finished runs of a sweep into results.csv, summary.csv, paired_tests.csv, claims.csv and
    results.md (the same tables in Markdown). SWEEP_DIR may also be a results.csv written earlier: the
    statistics and claims are then recomputed from it (when the run directories are gone)."""
    from collapse_lab.results.claims import format_claims
    from collapse_lab.results.writer import format_summary, write_results

    report = write_results(sweep_dir, out_dir=out_dir, confidence=confidence, sweep_id=sweep_id)
    for run, why in report.skipped:
        click.echo(f"skipped {run}: {why}", err=True)
    for note in report.collected.warnings:
        click.echo(f"warning: {note}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1, default=str))
        return
    for metric in ("ensemble_auc", "best_student_auc", "gap"):
        click.echo(format_summary(report.summary, metric))
        click.echo("")
    if show_claims:
        for dataset, claims in report.claims.groupby("dataset", sort=False):
            click.echo(f"claims (docs/method.md §14) on {dataset}:\n{format_claims(claims, confidence=confidence)}\n")
    runs = report.collected.runs().shape[0]
    click.echo(f"{runs} runs ({len(report.skipped)} skipped) -> " + ", ".join(str(p) for p in report.paths.values()))
