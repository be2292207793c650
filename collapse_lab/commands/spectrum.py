"""``collapse-lab spectrum PATH``: singular-value spectra and collapse metrics of a run or checkpoint;
``collapse-lab spectrum A B``: the per-matrix metric differences B − A (:mod:`collapse_lab.spectral.compare`)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["spectrum"]


#: what ``--device`` accepts: the spectra are float64 numpy/OpenBLAS products on the host (docs/metrics.md §8.5)
SPECTRUM_DEVICES = ("auto", "cpu")


@click.command("spectrum")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="PATH [B]")
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
              help="output directory [default: <run>/spectrum, or <file stem>_spectrum next to a file]; with two "
                   "paths, where spectrum_diff.csv goes [default: nothing is written]")
@click.option("--json", "as_json", is_flag=True, help="print JSON (paths, notes, every row) instead of the summary")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of the Gram/TSQR products (numpy BLAS and torch) [default: all available]")
@click.option("--device", default="auto", show_default=True,
              help="auto | cpu. The spectra are always computed on the CPU in float64 (numpy/OpenBLAS Gram, "
                   "TSQR); a GPU device is not supported here, use --threads instead")
def spectrum(paths: tuple[Path, ...], targets: str | None, threshold: str, tau: float | None, center: bool,
             exact: bool, weighting: str, field_dims: str | None, checkpoint: str, out_dir: Path | None,
             as_json: bool, threads: int | None, device: str) -> None:
    """Spectra, knowledge abundance and collapse metrics of PATH (run dir, checkpoint dir or tensor file).

    Writes spectrum.csv (tidy) and singular_values.npz and prints a summary. With two paths A B (runs or
    checkpoints), compares them instead: per-matrix metric differences B - A, matched by tensor name, with the
    matrices found on one side only listed (nothing written unless --out is given).
    """
    from collapse_lab.errors import UserError
    from collapse_lab.io.paths import check_name
    from collapse_lab.utils.threads import thread_limit

    if len(paths) > 2:
        raise click.UsageError(f"expected PATH, or two paths A B to compare; got {len(paths)} paths")
    if device not in SPECTRUM_DEVICES:
        raise UserError(f"--device {device!r}: spectra are computed on the CPU in float64 (numpy Gram and TSQR); "
                        "valid: auto, cpu (use --threads to use more cores)")

    # a checkpoint is picked by its manifest name (best, last, epoch_0003), never joined into a path; a value
    # like ../x could only be a path, so it is refused as such rather than reported as an unknown name
    check_name(checkpoint, "--checkpoint")
    dims = None
    if field_dims:
        try:
            dims = [int(x) for x in field_dims.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--field-dims: expected comma-separated integers, got {field_dims!r}") from None
    options = dict(targets=targets, tau=tau, threshold=threshold, center=center, exact=exact, weighting=weighting,
                   field_dims=dims, checkpoint=checkpoint)
    with thread_limit(threads):
        text = (_compare(*paths, out_dir, as_json, options) if len(paths) == 2 else
                _single(paths[0], out_dir, as_json, options))
    click.echo(text, nl=False)


def _single(path: Path, out_dir: Path | None, as_json: bool, options: dict) -> str:
    from collapse_lab.spectral.analysis import spectrum_report

    return spectrum_report(path, out_dir=out_dir, as_json=as_json, **options)


def _compare(a: Path, b: Path, out_dir: Path | None, as_json: bool, options: dict) -> str:
    from collapse_lab.spectral.compare import compare_spectra, comparison_json, format_comparison, write_comparison

    result = compare_spectra(a, b, **options)
    written = write_comparison(result, out_dir) if out_dir is not None else None
    if as_json:
        return comparison_json(result, written) + "\n"
    header = "spectrum B - A" + (f" -> {written}" if written else "")
    return format_comparison(result, header=header, threshold=options["threshold"])
