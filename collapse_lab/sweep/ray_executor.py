"""The ``ray`` executor: every run of a sweep is a Ray task with declared resources (docs/architecture.md §8.3).

``collapse-lab sweep GRID --executor ray [--address auto|HOST:PORT] [--threads T] [--gpus-per-run G]``
submits ``fn(task)`` for every task as ``ray.remote(num_cpus=T, num_gpus=G)`` and yields ``(index, result)``
in ``ray.wait`` completion order, so the sweep logic of :mod:`collapse_lab.sweep.runner` (run names,
``sweep.json``, locks, resumption) is the one of the local executor. A task that raises comes back as its
exception (the cause of Ray's ``RayTaskError``); a worker that dies comes back as Ray's error. Tasks are not
retried by Ray (``max_retries=0``): a killed run is recorded as failed and the next sweep resumes it from its
last epoch, as with ``--executor local``.

Resources: each task asks for ``threads`` CPUs (default 1; torch and BLAS use that many threads) and
``gpus_per_run`` GPUs (a fraction such as 0.25 packs several small CTR runs on one GPU; Ray sets
``CUDA_VISIBLE_DEVICES``). A run's ``device="auto"`` becomes ``cuda`` when it was given GPUs and ``cpu``
otherwise, so a run never uses a GPU it did not reserve. ``jobs`` caps the runs in flight (default: all; Ray
queues what the cluster cannot run yet).

Results: by default the workers write into the sweep directory, which must then be on a filesystem every node
sees at the same path (NFS, a cluster filesystem, or one machine). :meth:`RayExecutor.prepare` checks this
before the first run: it writes a token file into ``<sweep>/runs`` and asks a zero-CPU task pinned to each node
that can run a run whether it reads the same token there. Where one cannot (or with ``copy_back=True``), runs
are trained in a scratch directory on the worker and come back as tar archives that the driver unpacks into
place atomically (:mod:`collapse_lab.sweep.copy_back`). The datasets must be prepared on every node either way
(``collapse-lab data prepare``, or ``COLLAPSE_LAB_DATA`` on a shared path), and collapse-lab installed there.

Ray itself is optional (the ``distributed`` extra); without it constructing the executor raises a one-line
:class:`~collapse_lab.errors.UserError` with the install command.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_write_text
from collapse_lab.sweep.executor import EXECUTORS, Executor, Outcome, _limit_threads

__all__ = ["RayExecutor", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'collapse-lab[distributed]'"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _call_with_threads(fn: Callable[[Any], Any], task: Any, threads: int) -> Any:
    """The body of every Ray task: cap torch/BLAS threads at the CPUs the task reserved, then run ``fn``."""
    _limit_threads(threads)
    return fn(task)


def _sees_token(path: str, token: str) -> Tuple[bool, str]:
    """Probe task: whether this node reads ``token`` in file ``path`` (a filesystem shared with the driver)."""
    try:
        seen = Path(path).read_text(encoding="utf-8") == token
    except OSError:
        seen = False
    return seen, socket.gethostname()


def _check_reachable(address: Optional[str], timeout: float = 5.0) -> None:
    """Fail at once, with a UserError, when ``HOST:PORT`` does not accept connections (``ray.init`` would retry
    for minutes); ``auto``, ``ray://`` and ``None`` are left to Ray."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or "://" in host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
                        "with `ray start --head --port PORT` or check the address") from None


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs every task as a Ray task on a Ray cluster (see the module docstring).

    Args:
        jobs: runs in flight at most (``None``: every task is submitted and Ray schedules them).
        threads: CPUs reserved by, and torch threads of, each run (default 1).
        address: the cluster: ``"auto"`` (started with ``ray start`` on this machine), ``"HOST:PORT"``, or
            ``None`` (``$RAY_ADDRESS``, else a new local instance). Ignored when Ray is already initialised.
        gpus_per_run: GPUs reserved by each run (0 to 1 in fractions, or a whole number).
        copy_back: ``True``: runs come back as archives; ``False``: workers write into the sweep directory;
            ``None``: decided by :meth:`prepare` (archives only when a node cannot see the sweep directory).
    """

    copy_back: bool = False

    def __init__(self, jobs: Optional[int] = None, threads: Optional[int] = None, address: Optional[str] = None,
                 gpus_per_run: Optional[float] = None, copy_back: Optional[bool] = None) -> None:
        if jobs is not None and int(jobs) < 1:
            raise UserError(f"--jobs must be at least 1, got {jobs}")
        if threads is not None and int(threads) < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        gpus = float(gpus_per_run or 0.0)
        if gpus < 0 or not math.isfinite(gpus) or (gpus > 1 and not gpus.is_integer()):
            raise UserError(f"--gpus-per-run must be a fraction in [0, 1] or a whole number, got {gpus_per_run}")
        self.ray = _import_ray()
        self.max_in_flight = int(jobs) if jobs is not None else None
        self.jobs = self.max_in_flight or 1  # updated to the cluster's capacity by prepare() (for the ETA)
        self.threads = int(threads) if threads is not None else 1
        self.address = address
        self.gpus_per_run = gpus
        self.requested_copy_back = copy_back
        self.copy_back = bool(copy_back)
        self.nodes_without_sweep_dir: List[str] = []

    def describe(self) -> Dict[str, Any]:
        return {**super().describe(), "threads": self.threads, "gpus_per_run": self.gpus_per_run,
                "address": self.address, "copy_back": self.copy_back}

    def task_device(self, device: str) -> str:
        """``auto`` becomes ``cuda`` for runs that reserve GPUs and ``cpu`` for the others."""
        if device == "auto":
            return "cuda" if self.gpus_per_run > 0 else "cpu"
        return device

    # -- cluster ----------------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Initialise Ray (connect to ``address`` or start a local instance) unless it already is."""
        ray = self.ray
        if ray.is_initialized():
            return
        _check_reachable(self.address)
        try:
            ray.init(address=self.address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--executor ray: cannot start or reach Ray at {where}: {first} (start a cluster "
                            "with `ray start --head` and pass --address auto or HOST:PORT)") from None

    def _run_nodes(self) -> List[Dict[str, Any]]:
        """The alive nodes that have the CPUs and GPUs one run asks for (a UserError when there is none)."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        fits = [n for n in nodes if n.get("Resources", {}).get("CPU", 0) >= self.threads
                and n.get("Resources", {}).get("GPU", 0) >= self.gpus_per_run]
        if not fits:
            biggest = max((n.get("Resources", {}) for n in nodes), key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)),
                          default={})
            raise UserError(f"--executor ray: no node of the Ray cluster has the {self.threads} CPU(s) and "
                            f"{self.gpus_per_run:g} GPU(s) a run asks for (the largest has {biggest.get('CPU', 0):g} "
                            f"CPUs, {biggest.get('GPU', 0):g} GPUs); lower --threads or --gpus-per-run")
        return fits

    def _capacity(self, nodes: Sequence[Dict[str, Any]]) -> int:
        """How many runs the nodes can hold at once (for the ETA of the sweep log)."""
        total = 0
        for node in nodes:
            res = node.get("Resources", {})
            slots = int(res.get("CPU", 0) // self.threads)
            if self.gpus_per_run > 0:
                slots = min(slots, int(res.get("GPU", 0) // self.gpus_per_run))
            total += slots
        return max(1, total)

    def prepare(self, runs_dir: Path) -> None:
        """Connect, check that a run fits on some node, and decide copy-back (see the module docstring)."""
        self.connect()
        nodes = self._run_nodes()
        capacity = self._capacity(nodes)
        self.jobs = min(capacity, self.max_in_flight) if self.max_in_flight else capacity
        if self.requested_copy_back is not None:
            self.copy_back = bool(self.requested_copy_back)
            return
        self.nodes_without_sweep_dir = self._nodes_without(Path(runs_dir), nodes)
        self.copy_back = bool(self.nodes_without_sweep_dir)

    def _nodes_without(self, runs_dir: Path, nodes: Sequence[Dict[str, Any]]) -> List[str]:
        """Host names of the nodes that do not see ``runs_dir`` (a token file written here, read there)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = secrets.token_hex(16)
        probe = runs_dir / f".shared-filesystem-probe-{token[:8]}"
        atomic_write_text(probe, token)
        try:
            remote = self.ray.remote(_sees_token)
            refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                node["NodeID"], soft=False)).remote(str(probe.absolute()), token) for node in nodes]
            return [host for seen, host in self.ray.get(refs) if not seen]
        finally:
            probe.unlink(missing_ok=True)

    # -- execution --------------------------------------------------------------------------------------------

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        ray = self.ray
        if not tasks:
            return
        self.connect()
        remote = ray.remote(_call_with_threads).options(num_cpus=self.threads, num_gpus=self.gpus_per_run,
                                                        max_retries=0)
        fn_ref = ray.put(fn)
        queue = iter(enumerate(tasks))
        pending: Dict[Any, int] = {}

        def submit(count: int) -> None:
            for _ in range(count):
                item = next(queue, None)
                if item is None:
                    return
                pending[remote.remote(fn_ref, item[1], self.threads)] = item[0]

        try:
            submit(self.max_in_flight or len(tasks))
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        result: Any = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # fn raised: report its own exception
                        cause = getattr(exc, "cause", None)
                        result = cause if isinstance(cause, BaseException) else exc
                    except ray.exceptions.RayError as exc:  # the worker died, the node was lost, ...
                        result = exc
                    yield index, result
                    submit(1)
        finally:
            for ref in pending:  # the sweep was interrupted: stop its runs (their locks die with the workers)
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or the cluster is gone
                    pass
