"""``collapse-lab spectrum PATH``: singular-value spectra and collapse metrics of a run or checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["spectrum"]


@click.command("spectrum")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--targets", default=None, metavar="LIST",
              help="comma-separated subset of weights,embeddings,activations,input (default: all present)")
@click.option("--threshold", type=click.Choice(["abs", "mp", "rel"]), default="abs", show_default=True,
              help="knowledge-abundance threshold kind that --tau sets and the summary shows: abs (sv > tau, "
                   "KDEF), mp (sv > tau x Marchenko-Pastur bulk edge of an equal-norm Gaussian), "
                   "rel (sv > tau x sv_max)")
@click.option("--tau", type=float, default=None,
              help="threshold parameter of --threshold [default: 4 for abs, 1 for mp, 0.1 for rel]")
@click.option("--center/--no-center", default=True, show_default=True,
              help="center activations and the embedding input (weights and tables are never centered)")
@click.option("--exact", is_flag=True, help="TSQR (float64) for every matrix instead of the float64 Gram")
@click.option("--weighting", default="uniform", show_default=True, metavar="uniform|frequency|trained",
              help="embedding rows: uniform, scaled by sqrt(train count), or only ids seen in training")
@click.option("--field-dims", default=None, metavar="N1,N2,...",
              help="rows per field, to slice a single concatenated embedding table (foreign checkpoints)")
@click.option("--checkpoint", default="best", show_default=True, help="checkpoint of a run directory")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="output directory [default: <run>/spectrum, or <file stem>_spectrum next to a file]")
@click.option("--json", "as_json", is_flag=True, help="print JSON (paths, notes, every row) instead of the summary")
def spectrum(path: Path, targets: str | None, threshold: str, tau: float | None, center: bool, exact: bool,
             weighting: str, field_dims: str | None, checkpoint: str, out_dir: Path | None, as_json: bool) -> None:
    """Spectra, knowledge abundance and collapse metrics of PATH (run dir, checkpoint dir or tensor file).

    Writes spectrum.csv (tidy) and singular_values.npz and prints a summary.
    """
    from collapse_lab.errors import UserError
    from collapse_lab.spectral.report import spectrum_report

    dims = None
    if field_dims:
        try:
            dims = [int(x) for x in field_dims.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--field-dims: expected comma-separated integers, got {field_dims!r}") from None
    text = spectrum_report(path, out_dir=out_dir, as_json=as_json, targets=targets, tau=tau, threshold=threshold,
                           center=center, exact=exact, weighting=weighting, field_dims=dims, checkpoint=checkpoint)
    click.echo(text, nl=False)
