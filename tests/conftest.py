"""Shared test settings: headless plotting, small thread counts, no network unless a test is marked ``data``."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_configure(config):  # noqa: D103 - pytest hook
    # Test tensors are tiny: one thread avoids OpenMP spin/stall overhead that dominated small ops on 2 cores.
    import torch

    torch.set_num_threads(1)
