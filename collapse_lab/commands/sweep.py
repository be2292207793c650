"""``collapse-lab sweep GRID.yaml [key=v1,v2 ...]``: run or resume a grid of training runs
(library: :func:`collapse_lab.sweep.runner.run_sweep`)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Optional, Tuple

import click

from collapse_lab.commands.executor_options import build_executor, executor_options

__all__ = ["sweep_command"]


@click.command("sweep")
@click.argument("grid", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sweep directory (default: sweeps/<grid name>).")
@click.option("--jobs", "-j", type=int, default=None,
              help="Runs at the same time (default: 1; with --executor ray, as many as the cluster holds).")
@click.option("--threads", type=int, default=None,
              help="Torch threads (and Ray CPUs) per run (default: CPU cores // jobs; with --executor ray, 1).")
@executor_options
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda, passed to every run.")
@click.option("--dry-run", is_flag=True, help="List the runs and their status; train nothing.")
@click.option("--keep-stale", is_flag=True,
              help="Count stale runs (trained on an older preparation of their dataset) as complete; do not train "
                   "them again.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (every run with its status; with --dry-run nothing is trained).")
def sweep_command(grid: Path, overrides: Tuple[str, ...], out_dir: Optional[Path], jobs: Optional[int],
                  threads: Optional[int], executor: str, address: Optional[str], gpus_per_run: Optional[float],
                  copy_back: Optional[bool], device: str, dry_run: bool, keep_stale: bool, as_json: bool) -> None:
    """Train every point of a grid (YAML axes, or KEY=V1,V2 lists); finished runs are skipped.

    OVERRIDES are KEY=V1,V2 axes; anything starting with '-' is an option (an unknown one is an error).

    Failed or interrupted runs are trained again when the command is repeated, and so are stale ones (complete,
    but trained on another preparation of their dataset than the one prepared now); a failing run is recorded in
    <sweep>/sweep.json and the others go on (exit code 1 if any failed).
    """
    from collapse_lab.sweep.runner import run_sweep

    runner = build_executor(executor, jobs, threads, address, gpus_per_run, copy_back)
    report = run_sweep(grid, out_dir=out_dir, overrides=overrides, executor=runner, device=device, dry_run=dry_run,
                       keep_stale=keep_stale)
    for note in report.warnings:
        click.echo(f"warning: {note}", err=True)
    for name, note in report.dataset_mismatches.items():
        click.echo(f"warning: {name}: {note}", err=True)
    for name, error in report.failed.items():
        click.echo(f"failed: {name}: {error}", err=True)
    for name, error in report.resume_errors.items():
        if name not in report.failed:  # a failed run's error names the resume error already
            click.echo(f"resume failed, trained again from scratch: {name}: {error}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(dry_run=dry_run), indent=1))
        if report.failed:
            sys.exit(1)
        return
    if dry_run:
        for name in report.runs:
            note = "  (no dataset hash recorded: kept, not checked)" if name in report.unverified else \
                "  (kept: --keep-stale)" if name in report.kept_stale else ""
            click.echo(f"{report.statuses[name]:<9} {name}{note}")
        if report.unverified:
            click.echo(f"{len(report.unverified)} complete runs record no dataset hash (trained before it was "
                       "recorded, or on a dataset without meta.json): kept as complete; delete a run directory to "
                       "train it again")
        pending = sum(s != "complete" and n not in report.kept_stale for n, s in report.statuses.items())
        counts = Counter(report.statuses.values())
        by_status = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
        click.echo(f"sweep {report.sweep_id}: {len(report.runs)} runs ({by_status}), {pending} to train -> "
                   f"{report.sweep_dir}")
        return
    click.echo(report.summary_line())
    if report.failed:
        sys.exit(1)
