"""Spectral analysis of CTR ensembles: singular values, knowledge/information abundance and collapse metrics.

* :mod:`~collapse_lab.spectral.functional` — the Hill-number core and named metrics (pure functions of σ);
* :mod:`~collapse_lab.spectral.accumulator` — float64 streaming Gram, Chan-merged centering, TSQR exact mode;
* :mod:`~collapse_lab.spectral.streaming` — :func:`matrix_spectrum`: backend choice, auto-exact, wide matrices;
* :mod:`~collapse_lab.spectral.baselines` — same-shape Gaussian baselines (seeded Monte Carlo, cached);
* :mod:`~collapse_lab.spectral.sources` / :mod:`~collapse_lab.spectral.targets` — reading run directories,
  checkpoints and foreign state dicts, classifying their 2-D tensors;
* :mod:`~collapse_lab.spectral.analysis` — :func:`analyze` → tidy DataFrame, ``spectrum.csv``,
  ``singular_values.npz``.

The metric functions import only numpy/scipy; :func:`analyze` and :func:`load_singular_values` (pandas, torch,
safetensors) are imported on first use.
"""

from __future__ import annotations

from typing import Any

from collapse_lab.spectral.functional import (
    alpha_req,
    alpha_req_reason,
    covariance_effective_rank,
    effective_rank,
    hill,
    information_abundance,
    ka_threshold,
    knowledge_abundance,
    mp_bulk_edge,
    nuclear_ratio,
    numerical_rank,
    participation_ratio,
    rankme,
    stable_rank,
)

__all__ = [
    "analyze",
    "load_singular_values",
    "matrix_spectrum",
    "hill",
    "information_abundance",
    "effective_rank",
    "covariance_effective_rank",
    "nuclear_ratio",
    "participation_ratio",
    "stable_rank",
    "rankme",
    "numerical_rank",
    "knowledge_abundance",
    "ka_threshold",
    "mp_bulk_edge",
    "alpha_req",
    "alpha_req_reason",
]

_LAZY = {
    "analyze": "collapse_lab.spectral.analysis",
    "load_singular_values": "collapse_lab.spectral.analysis",
    "matrix_spectrum": "collapse_lab.spectral.streaming",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
