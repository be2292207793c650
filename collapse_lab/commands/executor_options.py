"""The executor options shared by ``collapse-lab sweep`` and ``collapse-lab reproduce`` (README "Running on a
cluster"; :mod:`collapse_lab.sweep.executor`, :mod:`collapse_lab.sweep.ray_executor`)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import click

__all__ = ["executor_options", "build_executor"]


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--executor``, ``--address``, ``--gpus-per-run`` and ``--copy-back/--no-copy-back`` to a command."""
    options = [
        click.option("--executor", default="local", show_default=True,
                     help="Where runs execute: local (this machine) or ray (a Ray cluster; needs "
                          "pip install 'collapse-lab[distributed]')."),
        click.option("--address", default=None,
                     help="With --executor ray: the cluster, auto (started by `ray start` here) or HOST:PORT "
                          "(default: $RAY_ADDRESS, else a new local Ray instance)."),
        click.option("--gpus-per-run", type=float, default=None,
                     help="With --executor ray: GPUs each run reserves (a fraction such as 0.25 shares a GPU)."),
        click.option("--copy-back/--no-copy-back", default=None,
                     help="With --executor ray: train in a scratch directory on the worker and send the run "
                          "directory back as an archive (default: only if a worker cannot see the sweep directory)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_executor(executor: str, jobs: Optional[int], threads: Optional[int], address: Optional[str],
                   gpus_per_run: Optional[float], copy_back: Optional[bool]) -> Any:
    """The executor the options name (a ``UserError`` for an option the executor does not take)."""
    from collapse_lab.sweep.executor import make_executor

    return make_executor(executor, jobs=jobs, threads=threads, address=address, gpus_per_run=gpus_per_run,
                         copy_back=copy_back)
