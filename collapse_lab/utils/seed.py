"""Seeding for reproducible runs (docs/architecture.md §7).

Per-student seeds come from ``numpy.random.SeedSequence(seed).spawn(n)`` so that students are initialised
differently by design (identical initialisations would fake collapse) and reproducibly.
"""

from __future__ import annotations

import os
import random
from typing import List

import numpy as np

__all__ = ["seed_everything", "derive_seeds"]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed ``random``, numpy and torch (CPU and CUDA); optionally request deterministic kernels."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def derive_seeds(seed: int, n: int) -> List[int]:
    """``n`` independent 31-bit seeds derived from ``seed``.

    Example:
        >>> derive_seeds(1, 3) == derive_seeds(1, 3)
        True
        >>> len(set(derive_seeds(1, 4)))
        4
    """
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0] >> 1) for c in children]
