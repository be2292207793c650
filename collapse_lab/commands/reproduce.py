"""``collapse-lab reproduce --preset NAME``: data + sweep + spectra + results + figures
(library: :func:`collapse_lab.sweep.reproduce.reproduce`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Tuple

import click

from collapse_lab.commands.executor_options import build_executor, executor_options

__all__ = ["reproduce_command"]


@click.command("reproduce")
@click.option("--preset", required=True, help="A preset of configs/sweeps (quick, ml100k, criteo, ...) or a grid file.")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sweep directory (default: sweeps/<preset>).")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the figures go (default: <sweep directory>/figures).")
@click.option("--jobs", "-j", type=int, default=None,
              help="Runs at the same time (default: 1; with --executor ray, as many as the cluster holds).")
@click.option("--threads", type=int, default=None,
              help="Torch threads (and Ray CPUs) per run (default: CPU cores // jobs; with --executor ray, 1).")
@executor_options
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda for training.")
@click.option("--keep-stale", is_flag=True,
              help="Count stale runs (trained on an older preparation of their dataset) as complete; do not train "
                   "them again.")
@click.option("--json", "as_json", is_flag=True, help="Print the report of every step as JSON.")
def reproduce_command(preset: str, overrides: Tuple[str, ...], out_dir: Optional[Path], figures_dir: Optional[Path],
                      jobs: Optional[int], threads: Optional[int], executor: str, address: Optional[str],
                      gpus_per_run: Optional[float], copy_back: Optional[bool], device: str, keep_stale: bool,
                      as_json: bool) -> None:
    """Run a preset end to end; rerunning it resumes (finished runs and analysed spectra are kept).

    Extra KEY=V1,V2 arguments replace or add grid axes (e.g. seed=2024,2025). Exit code 1 if a run or a
    spectrum failed (the results and figures are still written from the runs that finished).
    """
    from collapse_lab.sweep.reproduce import reproduce, summary_lines

    runner = build_executor(executor, jobs, threads, address, gpus_per_run, copy_back)
    report = reproduce(preset, out_dir=out_dir, overrides=overrides, executor=runner, figures_dir=figures_dir,
                       device=device, keep_stale=keep_stale)
    out, err = summary_lines(report)
    for line in err:
        click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        for line in out:
            click.echo(line)
    if report.failed:
        sys.exit(1)
