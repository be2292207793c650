"""collapse-lab: dimensional collapse in CTR prediction ensembles.

Built around Li et al., *From Collapse to Stability: A Knowledge-Driven Ensemble Framework for Scaling Up
Click-Through Rate Prediction Models* (arXiv 2411.16122, KDEF). Importing the package is light: torch,
matplotlib, scikit-learn and Ray are imported only by the functions that need them.
"""

from __future__ import annotations

from typing import Any

from collapse_lab.__about__ import __version__

__all__ = ["__version__", "train"]


def train(config: Any = None, **kwargs: Any) -> Any:
    """Train an ensemble from a config (dict, list of ``key=value`` or a config object); see
    :func:`collapse_lab.training.api.train`."""
    from collapse_lab.training.api import train as _train

    return _train(config, **kwargs)
