"""Tiny run directories and checkpoints with KNOWN singular values, for the spectral tests.

Written by hand per the README run-directory contract (the trainer is not needed): ``manifest.json``,
``checkpoints/best/model.safetensors``, ``probe.safetensors`` and a processed-dataset ``counts/`` folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from safetensors.torch import save_file

FIELDS = {"user": 60, "item": 40}  # vocab sizes
D = 4  # embedding dim
HIDDEN = (6, 4)  # hidden widths; input dim = len(FIELDS) * D = 8
# KNOWN singular values of each student's hidden weights (descending); τ = 4 gives the KA below
SIGMAS = {
    (0, 0): (10.0, 9.0, 5.0, 4.0, 3.0, 0.5),  # KA = 3/6 (σ = τ is not counted)
    (0, 1): (8.0, 5.0, 4.0, 2.0),  # KA = 2/4
    (1, 0): (6.0, 4.5, 4.2, 1.0, 1.0, 1.0),  # KA = 3/6
    (1, 1): (3.0, 2.0, 1.0, 0.5),  # KA = 0
}
KA = {(0, 0): 0.5, (0, 1): 0.5, (1, 0): 0.5, (1, 1): 0.0}
PROBE_ROWS = 64


def with_singular_values(rows: int, cols: int, sigma: Sequence[float], seed: int) -> np.ndarray:
    """A rows×cols float64 matrix U diag(σ) Vᵀ with random orthonormal U, V (Haar via QR)."""
    rng = np.random.default_rng(seed)
    k = len(sigma)
    u, _ = np.linalg.qr(rng.standard_normal((rows, k)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, k)))
    return (u * np.asarray(sigma)) @ v.T


def tables(seed: int = 0) -> Dict[str, np.ndarray]:
    """Per-field tables: ``user`` of rank 2 (σ = 3, 1), ``item`` iid Gaussian."""
    rng = np.random.default_rng(seed)
    return {"user": with_singular_values(FIELDS["user"], D, (3.0, 1.0), seed + 1),
            "item": rng.standard_normal((FIELDS["item"], D))}


def counts(seed: int = 0) -> Dict[str, np.ndarray]:
    """Training-split counts; a third of the ids never seen (count 0)."""
    rng = np.random.default_rng(seed + 7)
    out = {}
    for f, v in FIELDS.items():
        c = rng.integers(1, 50, size=v).astype(np.int64)
        c[::3] = 0
        out[f] = c
    return out


def model_tensors(seed: int = 0) -> Dict[str, torch.Tensor]:
    """A state dict with the README tensor names (float32)."""
    dims = [len(FIELDS) * D, *HIDDEN]
    sd = {f"embedding.tables.{f}.weight": torch.tensor(t, dtype=torch.float32) for f, t in tables(seed).items()}
    for (k, j), s in SIGMAS.items():
        w = with_singular_values(dims[j + 1], dims[j], s, seed + 10 * k + j)
        sd[f"students.{k}.layers.{j}.linear.weight"] = torch.tensor(w, dtype=torch.float32)
        sd[f"students.{k}.layers.{j}.linear.bias"] = torch.zeros(dims[j + 1])
        sd[f"students.{k}.layers.{j}.bn.running_mean"] = torch.zeros(dims[j + 1])
    for k in (0, 1):
        sd[f"students.{k}.head.weight"] = torch.ones(1, HIDDEN[-1])
        sd[f"students.{k}.head.bias"] = torch.zeros(1)
    return sd


def probe_tensors(seed: int = 0, nan_rows: Sequence[int] = ()) -> Dict[str, torch.Tensor]:
    """Probe activations (P, H_j), the input (P, F·D) and indices; ``nan_rows`` of students.0.layers.0 are NaN."""
    rng = np.random.default_rng(seed + 3)
    out = {"input": torch.tensor(rng.standard_normal((PROBE_ROWS, len(FIELDS) * D)) + 5.0, dtype=torch.float32),
           "indices": torch.arange(PROBE_ROWS, dtype=torch.int64)}
    for k in (0, 1):
        for j, h in enumerate(HIDDEN):
            a = np.maximum(rng.standard_normal((PROBE_ROWS, h)) + 0.5, 0.0)
            out[f"students.{k}.layers.{j}"] = torch.tensor(a, dtype=torch.float32)
    if nan_rows:
        out["students.0.layers.0"][list(nan_rows)] = float("nan")
    return out


def make_run(root: Path, seed: int = 0, nan_rows: Sequence[int] = (), probe: bool = True) -> Path:
    """Write a complete tiny run directory (and its dataset counts) under ``root``; return the run dir."""
    data = root / "data" / "tiny"
    (data / "counts").mkdir(parents=True)
    for f, c in counts(seed).items():
        np.save(data / "counts" / f"{f}.npy", c)
    run = root / "run"
    (run / "checkpoints" / "best").mkdir(parents=True)
    save_file(model_tensors(seed), str(run / "checkpoints" / "best" / "model.safetensors"))
    dims = [len(FIELDS) * D, *HIDDEN]
    manifest = {
        "schema_version": 1, "kind": "collapse-lab-run", "status": "complete", "error": None,
        "config": {"n": 2, "embedding_dim": D},
        "dataset": {"id": "tiny", "path": str(data), "hash": None, "rows": {"train": 100, "valid": 64, "test": 64}},
        "model": {
            "num_students": 2, "student": "mlp", "fusion": "mean", "embedding_dim": D,
            "fields": [{"name": f, "type": "categorical", "vocab_size": v, "table": f"embedding.tables.{f}.weight",
                        "shape": [v, D]} for f, v in FIELDS.items()],
            "hidden_layers": [{"member": k, "layer": j, "name": f"students.{k}.layers.{j}",
                               "weight": f"students.{k}.layers.{j}.linear.weight", "shape": [dims[j + 1], dims[j]]}
                              for k in (0, 1) for j in range(len(HIDDEN))],
        },
        "checkpoints": [{"name": "best", "path": "checkpoints/best/model.safetensors", "epoch": 1, "step": 10,
                         "sha256": "", "metrics": {}}],
        "probe": None,
    }
    if probe:
        save_file(probe_tensors(seed, nan_rows), str(run / "probe.safetensors"))
        manifest["probe"] = {"path": "probe.safetensors", "split": "valid", "rows": PROBE_ROWS}
    (run / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return run
