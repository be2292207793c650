"""``collapse-lab figures SWEEP_DIR``: the standard figures of a sweep as PNG + PDF
(library: :func:`collapse_lab.plotting.figures.render_figures`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

__all__ = ["figures_command"]


@click.command("figures")
@click.argument("sweep_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: SWEEP_DIR/figures).")
@click.option("--threshold", type=click.Choice(["abs", "mp", "rel"]), default="abs", show_default=True,
              help="Knowledge-abundance threshold of figs 5-6: abs (sv > tau), mp (sv > tau x Marchenko-Pastur "
                   "bulk edge of an equal-norm Gaussian), rel (sv > tau x sv_max).")
@click.option("--tau", type=float, default=None,
              help="Threshold parameter of --threshold [default: 4 for abs, 1 for mp, 0.1 for rel].")
@click.option("--only", default=None, help="Comma-separated figures to draw (fig1,...,fig13 or full stems).")
@click.option("--format", "formats", default="png,pdf", show_default=True, help="Comma-separated file formats.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written and skipped as JSON.")
def figures_command(sweep_dir: Path, out_dir: Optional[Path], threshold: str, tau: Optional[float],
                    only: Optional[str], formats: str, as_json: bool) -> None:
    """Draw the standard figures of a sweep or a results.csv (degradation, collapse, spectra, KA, IA, EM, C9)."""
    from collapse_lab.plotting.figures import render_figures

    names = [s.strip() for s in only.split(",") if s.strip()] if only else None
    fmts = tuple(s.strip() for s in formats.split(",") if s.strip())
    report = render_figures(sweep_dir, out_dir=out_dir, tau=tau, formats=fmts, only=names,
                            threshold=threshold)
    for note in report.notes:
        click.echo(note, err=True)
    for stem, why in report.skipped.items():
        click.echo(f"skipped {stem}: {why}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        click.echo(f"sweep {report.sweep_id}: {len(report.written)} figures -> {report.out_dir}")
