"""The probe set: fixed validation rows whose hidden activations are saved after training.

Activation spectra are only comparable between runs if they are computed on the same inputs
(docs/architecture.md §7), so the probe rows depend only on the dataset size, ``probe_rows`` and the run seed:
``numpy.random.default_rng([seed, PROBE_STREAM]).choice(R, P, replace=False)``, sorted. ``probe.safetensors``
holds, in eval mode (BatchNorm running statistics, no dropout):

* ``students.<k>.layers.<j>``: (P, H_j) float32 activations after ReLU of hidden layer j of student k;
* ``input``: (P, F*D) the concatenated (pooled) embedding input shared by the students;
* ``indices``: (P,) int64 row indices into the probe split.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

from collapse_lab.data.dataset import BatchIterator, Split

__all__ = ["PROBE_STREAM", "probe_indices", "collect_probe", "probe_entry"]

#: second entropy word of the probe generator, so the probe never reuses the shuffling stream
PROBE_STREAM = 0x9E0B


def probe_indices(num_rows: int, probe_rows: int, seed: int) -> np.ndarray:
    """Sorted int64 indices of ``min(probe_rows, num_rows)`` distinct rows chosen by a seeded generator.

    Example:
        >>> idx = probe_indices(10, 4, seed=1)
        >>> len(idx), len(set(idx.tolist())), bool(np.all(np.diff(idx) > 0)), idx.dtype
        (4, 4, True, dtype('int64'))
        >>> np.array_equal(idx, probe_indices(10, 4, seed=1))
        True
    """
    size = min(int(probe_rows), int(num_rows))
    rng = np.random.default_rng([int(seed), PROBE_STREAM])
    return np.sort(rng.choice(int(num_rows), size=size, replace=False)).astype(np.int64)


def collect_probe(model: Any, split: Split, indices: np.ndarray, batch_size: int = 4096,
                  device: Any | None = None) -> Dict[str, Any]:
    """Hidden activations and inputs of ``model`` (eval mode) on ``split`` rows ``indices``.

    Returns:
        ``{"students.<k>.layers.<j>": (P, H_j), "input": (P, F*D), "indices": (P,)}`` CPU tensors.
    """
    import torch

    subset = Split(split.name, np.asarray(split.ids[indices]), np.asarray(split.labels[indices]),
                   None if split.values is None else np.asarray(split.values[indices]))
    chunks: Dict[str, list] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in BatchIterator(subset, batch_size, shuffle=False, device=device):
                out = model(batch.ids, values=batch.values, return_hidden=True)
                for name, act in out["hidden"].items():
                    chunks.setdefault(name, []).append(act.detach().float().cpu())  # (B, H_j)
                chunks.setdefault("input", []).append(out["input"].detach().float().cpu())  # (B, F*D)
    finally:
        model.train(was_training)
    tensors: Dict[str, Any] = {name: torch.cat(parts) for name, parts in chunks.items()}
    tensors["indices"] = torch.from_numpy(np.asarray(indices, dtype=np.int64).copy())
    return tensors


def probe_entry(path: str, split: str, tensors: Mapping[str, Any], sha256: str) -> Dict[str, Any]:
    """The manifest's ``probe`` entry."""
    return {"path": path, "split": split, "rows": int(tensors["indices"].shape[0]), "sha256": sha256,
            "tensors": sorted(tensors)}
