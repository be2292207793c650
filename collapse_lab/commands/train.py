"""``collapse-lab train``: parse arguments, call :func:`collapse_lab.training.api.train`, print the result table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Tuple

import click

__all__ = ["train_command"]


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file of config keys (e.g. configs/exp/kdef_mlp.yaml), merged before the overrides; or a "
                   "FuxiCTR model_config.yaml (mapped; the table goes to stderr).")
@click.option("--experiment", help="Experiment id of a FuxiCTR model_config.yaml [default: its only one].")
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: runs/<dataset>-<method>-<fusion>-n<N>-s<seed>].")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda (or cuda:<i>).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of torch and BLAS for this run [default: torch's; a num_threads config key wins].")
@click.option("--resume", is_flag=True, help="Continue the run in --out after its last finished epoch.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Smoke cap: stop after K optimizer steps.")
@click.option("--max-epochs", type=click.IntRange(min=1), help="Smoke cap: at most E epochs.")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: on a terminal only].")
@click.option("--parallel", type=click.Choice(["none", "data", "ensemble"]), default="none", show_default=True,
              help="Under torchrun: split each batch (data) or the students (ensemble) over the processes; "
                   "the run equals single-process training.")
def train_command(config_file: Path | None, overrides: Tuple[str, ...], out_dir: Path | None, device: str,
                  threads: int | None, resume: bool, overwrite: bool, as_json: bool, max_steps: int | None,
                  max_epochs: int | None, progress: bool | None, parallel: str, experiment: str | None) -> None:
    """Train a shared-embedding CTR ensemble, e.g. ``collapse-lab train dataset=movielens-100k method=kdef n=4``.

    OVERRIDES are config keys as key=value (values are YAML: hidden_units=[400,400], exam=false); see the
    README's "Training" section for every key and its default.
    """
    from collapse_lab.fuxictr_config import fuxictr_layer
    from collapse_lab.training.api import train
    from collapse_lab.training.run_table import format_table
    from collapse_lab.utils.threads import thread_limit

    items = list(overrides)
    if max_steps is not None:
        items.append(f"max_steps={max_steps}")
    if max_epochs is not None:
        items.append(f"max_epochs={max_epochs}")
    config, config_file = fuxictr_layer(config_file, experiment, items, echo=lambda t: click.echo(t, err=True))
    with thread_limit(threads):  # not a config key: the run's config hash (and --resume) do not depend on it
        result = train(config, out_dir, resume=resume, overwrite=overwrite, device=device, progress=progress,
                       config_file=config_file, parallel=parallel)
    if parallel != "none" and os.environ.get("RANK", "0") != "0":
        return  # rank 0 prints the result
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(format_table(result.to_dict()))
