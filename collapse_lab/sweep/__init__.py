"""Sweeps: grids of training runs, executed through a pluggable executor and resumable."""

from __future__ import annotations

from collapse_lab.sweep.executor import EXECUTORS, Executor, LocalExecutor, make_executor
from collapse_lab.sweep.grid import SweepPoint, SweepSpec, expand_grid, load_grid, parse_grid_overrides, run_name
from collapse_lab.sweep.ray_executor import RayExecutor  # registers "ray" (Ray itself is imported on use)
from collapse_lab.sweep.runner import SweepReport, run_status, run_sweep

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "SweepPoint",
    "SweepSpec",
    "expand_grid",
    "load_grid",
    "parse_grid_overrides",
    "run_name",
    "SweepReport",
    "run_status",
    "run_sweep",
]
