"""Random-number-generator states as tensors, so that ``trainer_state.pt`` loads with ``weights_only=True``.

Python's ``random`` state is ``(version, 625 ints, gauss_next)`` and numpy's legacy state is
``('MT19937', uint32[624], pos, has_gauss, cached_gaussian)``; both are packed into int64/float64 tensors.
torch's CPU and CUDA states already are uint8 tensors.

Example:
    >>> import random
    >>> state = get_rng_state()
    >>> a = random.random()
    >>> set_rng_state(state)
    >>> random.random() == a
    True
"""

from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np

__all__ = ["get_rng_state", "set_rng_state"]


def get_rng_state() -> Dict[str, Any]:
    """Snapshot of the Python, numpy (global), torch CPU and CUDA generators as tensors."""
    import torch

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: Dict[str, Any] = {
        "python": torch.tensor([version, *internal], dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if gauss is None else gauss], dtype=torch.float64),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
        "numpy_pos": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "numpy_cached": torch.tensor([cached], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore a snapshot from :func:`get_rng_state`."""
    import torch

    py = state["python"].tolist()
    gauss = float(state["python_gauss"][0])
    random.setstate((int(py[0]), tuple(int(v) for v in py[1:]), None if np.isnan(gauss) else gauss))
    pos, has_gauss = (int(v) for v in state["numpy_pos"].tolist())
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_cached"][0])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
