"""What the ``collapse-lab data`` commands call: list, fetch, prepare and describe datasets.

Names resolve in this order (:func:`prepare_dataset`):

1. an existing file: a YAML spec (:mod:`collapse_lab.data.spec`);
2. a built-in dataset: ``synthetic``, ``movielens-100k``, ``movielens-100k-autoint`` (:data:`BUILTINS`);
3. a preset ``configs/data/<name>.yaml`` of the repository (the folder next to the package,
   :func:`presets_dir`).

Processed datasets go to ``<data_root>/<dataset_id>/`` (``data_root``: the argument, else
``$COLLAPSE_LAB_DATA``, else ``./data``), which is where :func:`~collapse_lab.data.catalog.resolve_processed`
finds them by name. A spec's own ``data_root`` key (FuxiCTR vocabulary) is accepted and not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Union

from collapse_lab.data.catalog import data_root as _data_root
from collapse_lab.data.catalog import resolve_processed
from collapse_lab.data.prepare import PrepareResult
from collapse_lab.errors import UserError
from collapse_lab.io.paths import child
from collapse_lab.utils.resources import config_dir, config_names

__all__ = ["Builtin", "BUILTINS", "presets_dir", "preset_names", "list_datasets", "fetch_dataset",
           "prepare_dataset", "dataset_info"]

PathLike = Union[str, Path]


@dataclass
class Builtin:
    """A dataset the toolkit can produce by itself."""

    name: str
    description: str
    prepare: Callable[..., PrepareResult]  # (root, overwrite, progress) -> PrepareResult
    fetch: Callable[..., Dict[str, Any]] | None = None  # (root, from_dir) -> summary


def _prepare_synthetic(root: Path, overwrite: bool, progress: bool | None) -> PrepareResult:
    import time

    from collapse_lab.data.meta import read_meta
    from collapse_lab.data.synthetic import build_synthetic

    t0 = time.perf_counter()
    path, skipped = build_synthetic(root / "synthetic", overwrite=overwrite)
    meta = read_meta(path) or {}
    return PrepareResult(path, "synthetic", meta.get("content_hash", ""), skipped, dict(meta.get("rows", {})),
                         time.perf_counter() - t0)


def _fetch_movielens(root: Path, from_dir: PathLike | None = None) -> Dict[str, Any]:
    from collapse_lab.data.movielens import fetch_movielens_100k

    return fetch_movielens_100k(root, from_dir=from_dir, force=from_dir is not None)


def _movielens(label: str, name: str) -> Callable[..., PrepareResult]:
    def prepare(root: Path, overwrite: bool, progress: bool | None) -> PrepareResult:
        from collapse_lab.data import movielens as ml
        from collapse_lab.data.prepare import prepare_spec
        from collapse_lab.data.spec import spec_from_dict

        fetched = ml.fetch_movielens_100k(root)  # reuses the cache; downloads on first use
        paths = ml.write_ctr_splits(root, label=label)
        spec = spec_from_dict(ml.movielens_ctr_spec(paths, name), source=name)
        rule = "rating >= 4" if label == "threshold" else "drop rating 3; rating > 3"
        return prepare_spec(spec, root / name, overwrite=overwrite, progress=progress, extra_meta={
            "source": name, "fetched_from": fetched["source"], "label_rule": rule,
            "split": {"seed": ml.SPLIT_SEED, "fractions": [0.8, 0.1, 0.1]}, "acknowledgement": ml.ACKNOWLEDGEMENT})

    return prepare


BUILTINS: Dict[str, Builtin] = {b.name: b for b in (
    Builtin("synthetic", "seeded planted-model CTR data (20k rows, 8 Zipf fields, rank-4 pairwise interactions); "
            "records the oracle AUC/logloss", _prepare_synthetic),
    Builtin("movielens-100k", "GroupLens MovieLens-100K as CTR, label rating >= 4 (fetched at run time from the "
            "recbole 1.2.1 wheel or a folder)", _movielens("threshold", "movielens-100k"), _fetch_movielens),
    Builtin("movielens-100k-autoint", "MovieLens-100K, AutoInt-style label: 3s dropped, rating > 3",
            _movielens("autoint", "movielens-100k-autoint"), _fetch_movielens),
)}


def presets_dir() -> Path:
    """``configs/data`` of the source checkout, or its copy inside an installed wheel."""
    return config_dir("data")


def preset_names() -> List[str]:
    """Names of the presets (``configs/data/*.yaml``)."""
    return config_names("data")


def _preset_description(path: Path) -> str:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return "(unreadable preset)"
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), dict):
        data = next(iter(data.values()))
    return str(data.get("description", "")) if isinstance(data, dict) else ""


def list_datasets(data_root: PathLike | None = None) -> List[Dict[str, Any]]:
    """Built-in datasets and presets with a one-line description and whether they are prepared."""
    root = _data_root(data_root)
    rows = [{"name": b.name, "kind": "built-in", "description": b.description,
             "prepared": (root / b.name / "feature_map.json").exists()} for b in BUILTINS.values()]
    for name in preset_names():
        rows.append({"name": name, "kind": "preset", "description": _preset_description(presets_dir() /
                                                                                           f"{name}.yaml"),
                     "prepared": (root / name / "feature_map.json").exists()})
    return rows


def _unknown(name: str) -> UserError:
    return UserError(f"unknown dataset {name!r}: not a spec file, built-in ({', '.join(BUILTINS)}) or preset "
                     f"({', '.join(preset_names()) or 'none found in ' + str(presets_dir())})")


def fetch_dataset(name: str, *, data_root: PathLike | None = None, from_dir: PathLike | None = None,
                  ) -> Dict[str, Any]:
    """Obtain a built-in dataset's raw files (``from_dir``: a local folder instead of the download)."""
    if name not in BUILTINS:
        if name in preset_names():
            raise UserError(f"{name!r} is a preset: download its files yourself (BARS/reczoo archives) and point "
                            f"the paths in {presets_dir() / (name + '.yaml')} at them")
        raise _unknown(name)
    builtin = BUILTINS[name]
    if builtin.fetch is None:
        if from_dir is not None:
            raise UserError(f"{name!r} is generated locally; --from does not apply")
        return {"name": name, "source": "generated locally; nothing to fetch"}
    return {"name": name, **builtin.fetch(_data_root(data_root), from_dir=from_dir)}


def prepare_dataset(spec_or_name: PathLike, *, data_root: PathLike | None = None, overwrite: bool = False,
                    dataset_id: str | None = None, progress: bool | None = None) -> PrepareResult:
    """Prepare a spec file, built-in or preset into ``<data_root>/<dataset_id>`` (see the module docstring).

    Args:
        spec_or_name: YAML spec path, built-in name or preset name.
        data_root: where processed datasets live.
        overwrite: rebuild even if up to date.
        dataset_id: which dataset of a multi-dataset FuxiCTR config file to prepare.
        progress: progress bars (``None``: only on a terminal).
    """
    from collapse_lab.data.prepare import prepare_spec
    from collapse_lab.data.spec import load_spec

    root = _data_root(data_root)
    text = str(spec_or_name)
    path = Path(text)
    if path.is_file():
        spec = load_spec(path, dataset_id=dataset_id)
    elif text in BUILTINS:
        return BUILTINS[text].prepare(root, overwrite, progress)
    elif text in preset_names():
        spec = load_spec(presets_dir() / f"{text}.yaml", dataset_id=dataset_id)
    elif path.suffix in (".yaml", ".yml") or "/" in text:
        load_spec(path)  # raises the reason: not found, symlink loop, a directory...
        raise UserError(f"{path}: spec file not found")
    else:
        raise _unknown(text)
    out = child(root, spec.dataset_id, "dataset_id", spec.source)  # never outside the data root (--overwrite)
    return prepare_spec(spec, out, overwrite=overwrite, progress=progress)


def dataset_info(name_or_dir: PathLike, *, data_root: PathLike | None = None) -> Dict[str, Any]:
    """Rows and positive rate per split, fields (vocabulary size; max_len and pooling of sequences), hash and
    (synthetic) oracle metrics."""
    import numpy as np

    from collapse_lab.data.dataset import SPLITS, ProcessedDataset

    ds = ProcessedDataset(resolve_processed(name_or_dir, data_root))
    splits = {}
    for name in SPLITS:
        s = ds.split(name)
        rate = ds.meta.get("positive_rate", {}).get(name)
        splits[name] = {"rows": len(s), "positive_rate": float(np.mean(s.labels, dtype=np.float64))
                        if rate is None else float(rate)}
    total = sum(v["rows"] for v in splits.values())
    fmap = ds.feature_map
    return {
        "dataset_id": ds.dataset_id, "path": str(ds.root.resolve()), "source": ds.meta.get("source"),
        "description": ds.meta.get("description"), "content_hash": ds.content_hash,
        "prepared": ds.meta.get("prepared"), "rows": total,
        "positive_rate": sum(v["rows"] * v["positive_rate"] for v in splits.values()) / total if total else None,
        "splits": splits,
        "fields": [{"name": f.name, "type": f.type, "vocab_size": f.vocab_size, "max_len": f.max_len,
                    "oov_idx": f.oov_idx, "pooling": f.pooling} for f in fmap.fields],
        "num_id_columns": fmap.num_id_columns, "num_numeric": fmap.num_numeric,
        "total_features": sum(f.vocab_size for f in fmap.fields),
        **({"oracle": ds.meta["oracle"]} if "oracle" in ds.meta else {}),
    }
