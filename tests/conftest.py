"""Shared test settings: headless plotting, small thread counts, no network unless a test is marked ``data``."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
