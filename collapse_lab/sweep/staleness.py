"""Whether a complete run was trained on the dataset prepared now: the ``stale`` status of sweeps.

Run names and config hashes depend on the config only, so a dataset prepared again (other options, a newer
preparation code) would otherwise be trained on silently under the old results. Each run's manifest records the
content hash of the data it was trained on (``dataset.hash``); a dataset's ``meta.json`` records the hash of the
preparation on disk. Comparing the two needs no data to be read: one ``meta.json`` per dataset and one manifest per
run. A complete run that records no hash cannot be compared and stays complete (``unverified``): training a
finished run again on a guess would throw it away.

Kept apart from :mod:`collapse_lab.sweep.runner` (which plans and records sweeps) because the copy-back driver
and the runner's workers check the same status under the run lock, and the rule is one concern of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.io.contract import run_dataset_hash, run_status

__all__ = ["STALE", "dataset_key", "dataset_hashes", "classify_run", "sweep_run_status", "trained_mismatch",
           "mismatch_text"]

#: the sweep's status of a complete run trained on another preparation of its dataset than the one prepared now
STALE = "stale"


def dataset_key(config: Mapping[str, Any]) -> Tuple[Any, Any]:
    """``(dataset, data_root)`` of a run config: what names one prepared dataset."""
    return config.get("dataset"), config.get("data_root")


def dataset_hashes(configs: Sequence[Mapping[str, Any]]) -> Dict[Tuple[Any, Any], Optional[str]]:
    """``{(dataset, data_root): content hash}`` of the dataset prepared now for each config, resolved as training
    resolves it; None when it is not prepared or its ``meta.json`` records no hash (then nothing is compared).

    Reads one ``meta.json`` per distinct dataset, whatever the number of runs: the hash was computed when the
    dataset was prepared, so no data is read here.
    """
    from collapse_lab.data.catalog import resolve_processed
    from collapse_lab.data.meta import read_meta

    out: Dict[Tuple[Any, Any], Optional[str]] = {}
    for key in dict.fromkeys(dataset_key(c) for c in configs):
        try:
            meta = read_meta(resolve_processed(*key)) if key[0] else None
        except (UserError, OSError, ValueError):  # not prepared, unreadable: training will say why
            meta = None
        digest = meta.get("content_hash") if isinstance(meta, dict) else None
        out[key] = digest if isinstance(digest, str) and digest else None
    return out


def classify_run(run_dir: Union[str, Path], dataset_hash: Optional[str]) -> Tuple[str, bool]:
    """``(status, unverified)``: :func:`sweep_run_status`, and whether a complete run records no dataset hash
    to compare with ``dataset_hash``."""
    status = run_status(run_dir)
    if status != "complete" or dataset_hash is None:
        return status, False
    recorded = run_dataset_hash(run_dir)
    if recorded is None:
        return status, True
    return (STALE if recorded != dataset_hash else status), False


def sweep_run_status(run_dir: Union[str, Path], dataset_hash: Optional[str]) -> str:
    """:func:`run_status`, except ``stale`` for a complete run whose manifest records another dataset content hash
    than ``dataset_hash`` (the hash of the dataset prepared now; None: no check). A run that records none is
    ``complete``: there is nothing to compare, and training it again on a guess would throw away a finished run."""
    return classify_run(run_dir, dataset_hash)[0]


def trained_mismatch(run_dir: Union[str, Path], planned: Optional[str]) -> Optional[Dict[str, str]]:
    """``{"planned": hash, "recorded": hash}`` when a run just trained records another dataset hash than the one
    planned (the dataset was prepared again while the sweep ran, or its ``meta.json`` disagrees with what training
    hashes); None when they agree or either is unknown. The sweep records it and keeps the run: training it again
    would record the same hash and be stale again, forever."""
    recorded = run_dataset_hash(run_dir)
    if planned is None or recorded is None or recorded == planned:
        return None
    return {"planned": planned, "recorded": recorded}


def mismatch_text(mismatch: Mapping[str, str]) -> str:
    """One line naming both hashes of :func:`trained_mismatch` (first 12 hex digits)."""
    return (f"dataset hash mismatch: trained on {mismatch['recorded'][:12]}, planned {mismatch['planned'][:12]} "
            "(prepared again meanwhile, or meta.json disagrees with the data); kept, not trained again")
