"""Tiny synthetic datasets and configs shared by the trainer tests (tests/test_train_*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

__all__ = ["make_dataset", "tiny_config", "oracle", "TINY"]

#: a model small enough for a few-second CPU run, big enough to learn the planted interactions
TINY: Dict[str, Any] = {"hidden_units": [16, 16], "embedding_dim": 4, "batch_size": 256, "lr": 1e-2,
                        "embedding_regularizer": 1e-5, "probe_rows": 64, "num_threads": 1}


def make_dataset(root: Path, rows: int = 12000, seed: int = 1) -> Path:
    """A processed synthetic dataset (4 fields x 20 ids, rank-2 planted interactions) under ``root``."""
    from collapse_lab.data.synthetic import make_synthetic

    return make_synthetic(Path(root) / f"syn{rows}", rows=rows, fields=4, vocab_size=20, rank=2, seed=seed)


def tiny_config(dataset: Path, **overrides: Any) -> Dict[str, Any]:
    return {"dataset": str(dataset), **TINY, **overrides}


def oracle(dataset: Path, split: str = "test") -> Dict[str, float]:
    """Oracle AUC/logloss (true probabilities) recorded by the generator."""
    return json.loads((Path(dataset) / "meta.json").read_text())["oracle"][split]
