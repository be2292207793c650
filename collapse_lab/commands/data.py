"""``collapse-lab data list|fetch|prepare|info``: datasets (library: :mod:`collapse_lab.data.api`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import click

__all__ = ["data"]

_ROOT = click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where processed datasets live (default: $COLLAPSE_LAB_DATA or ./data).")


@click.group()
def data() -> None:
    """List, fetch, prepare and describe datasets."""


@data.command("list")
@_ROOT
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (name, kind, prepared, description).")
def list_cmd(data_root: Path | None, as_json: bool) -> None:
    """Show the built-in datasets and presets with a one-line description."""
    from collapse_lab.data.api import list_datasets

    rows = list_datasets(data_root)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'NAME':<{width}}  {'KIND':<8}  {'PREPARED':<8}  DESCRIPTION")
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['kind']:<8}  {'yes' if r['prepared'] else 'no':<8}  {r['description']}")


@data.command("fetch")
@click.argument("name")
@click.option("--from", "from_dir", type=click.Path(path_type=Path), default=None,
              help="Read the raw files from this folder (e.g. the unzipped official ml-100k) instead of downloading.")
@_ROOT
def fetch_cmd(name: str, from_dir: Path | None, data_root: Path | None) -> None:
    """Obtain a built-in dataset's raw files (never committed; cached under <data-root>/.cache)."""
    from collapse_lab.data.api import fetch_dataset

    s = fetch_dataset(name, data_root=data_root, from_dir=from_dir)
    if "ratings" in s:
        click.echo(f"{name}: {s['ratings']:,} ratings, {s['users']:,} users, {s['items']:,} items, "
                   f"{100 * s['positive_rate']:.1f}% with rating >= 4")
        click.echo(f"  source: {s['source']}\n  cached: {s['path']}")
    else:
        click.echo(f"{name}: {s['source']}")


@data.command("prepare")
@click.argument("spec_or_name")
@_ROOT
@click.option("--overwrite", is_flag=True, help="Rebuild even if an identical processed dataset exists.")
@click.option("--dataset-id", default=None, help="Which dataset of a multi-dataset FuxiCTR config to prepare.")
def prepare_cmd(spec_or_name: str, data_root: Path | None, overwrite: bool, dataset_id: str | None) -> None:
    """Build a processed dataset from a YAML spec, a built-in name or a preset name (configs/data/)."""
    from collapse_lab.data.api import prepare_dataset

    r = prepare_dataset(spec_or_name, data_root=data_root, overwrite=overwrite, dataset_id=dataset_id)
    for note in r.warnings:
        click.echo(f"warning: {note}", err=True)
    rows = " / ".join(f"{k} {v:,}" for k, v in r.rows.items())
    if r.skipped:
        click.echo(f"{r.dataset_id}: up to date in {r.path} (content hash {r.content_hash[:12]}; {rows} rows)")
    else:
        click.echo(f"{r.dataset_id}: prepared in {r.path} ({rows} rows, {r.seconds:.1f} s)")


def _format_info(info: Dict[str, Any]) -> str:
    lines = [f"{info['dataset_id']}  ({info['path']})"]
    if info.get("description"):
        lines.append(f"  {info['description']}")
    lines.append(f"  rows {info['rows']:,}, positive rate {100 * info['positive_rate']:.1f}%, content hash "
                 f"{(info.get('content_hash') or '-')[:12]}")
    for name, s in info["splits"].items():
        oracle = info.get("oracle", {}).get(name)
        extra = ""
        if oracle:
            auc = "n/a" if oracle["auc"] is None else f"{oracle['auc']:.4f}"
            extra = f"   oracle AUC {auc}, logloss {oracle['logloss']:.4f}"
        lines.append(f"  {name:<5} {s['rows']:>12,} rows  positive {100 * s['positive_rate']:5.1f}%{extra}")
    lines.append(f"  {len(info['fields'])} fields ({info['num_id_columns']} id columns, {info['num_numeric']} "
                 f"numeric), {info['total_features']:,} features in total:")
    for f in info["fields"]:
        seq = f", max_len {f['max_len']}, {f['pooling']} pooling" if f["type"] == "sequence" else ""
        lines.append(f"    {f['name']:<20} {f['type']:<12} vocab {f['vocab_size']:>10,}{seq}")
    return "\n".join(lines)


@data.command("info")
@click.argument("name_or_dir")
@_ROOT
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info_cmd(name_or_dir: str, data_root: Path | None, as_json: bool) -> None:
    """Rows and positive rate per split, fields and vocabulary sizes of a processed dataset."""
    from collapse_lab.data.api import dataset_info

    info = dataset_info(name_or_dir, data_root=data_root)
    click.echo(json.dumps(info, indent=2) if as_json else _format_info(info))
