"""The process group of a ``torchrun``-launched run, and what differs between its ranks.

``torchrun --nproc_per_node=G -m collapse_lab train --parallel data|ensemble ...`` starts G processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`start` joins them
(NCCL on CUDA, gloo on the CPU) and gives each rank its device (``cuda:<LOCAL_RANK>``). Every rank trains the
full model (the steps of :mod:`collapse_lab.parallel.step` keep the ranks identical), but only rank 0 writes
the run directory; the other ranks write theirs into a private temporary directory that is removed at the end
(docs/architecture.md §11).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

from collapse_lab.errors import UserError

__all__ = ["PARALLEL", "Group", "start"]

#: values of ``train --parallel``: one process, the batch split over processes, the students split over processes
PARALLEL = ("none", "data", "ensemble")


@dataclass
class Group:
    """This process's place in the run: ``rank`` of ``world_size``, its device and the strategy."""

    strategy: str
    rank: int
    world_size: int
    device: str
    owns_group: bool  # this process created the default process group (and destroys it in close())
    scratch: Path | None = field(default=None)

    def step_fn(self, num_students: int) -> Callable[..., Dict[str, Any]]:
        from collapse_lab.parallel.step import data_parallel_step, ensemble_parallel_step

        if self.strategy == "data":
            return data_parallel_step(self.rank, self.world_size)
        return ensemble_parallel_step(self.rank, self.world_size, num_students)

    def check(self, n: int, batch_size: int, students: Sequence[str] = ("mlp",)) -> None:
        """The config must give every rank a share: N >= G students (ensemble), B >= G rows (data); and the
        students must be MLPs, whose dropout draws and whole-batch BatchNorm the parallel steps replay."""
        other = sorted(set(students) - {"mlp"})
        if other:
            raise UserError(f"--parallel {self.strategy} trains mlp students only, not {', '.join(other)}; "
                            f"train this run in one process")
        if self.strategy == "ensemble" and n < self.world_size:
            raise UserError(f"--parallel ensemble splits the students over the processes: n={n} is fewer than "
                            f"the {self.world_size} processes; use fewer processes or --parallel data")
        if self.strategy == "data" and batch_size < self.world_size:
            raise UserError(f"--parallel data splits each batch over the processes: batch_size={batch_size} is "
                            f"smaller than the {self.world_size} processes")

    def private_dir(self) -> Path:
        """Where a rank > 0 writes its copy of the run (removed by :meth:`close`)."""
        if self.scratch is None:
            self.scratch = Path(tempfile.mkdtemp(prefix=f"collapse-lab-rank{self.rank}-")) / "run"
        return self.scratch

    def from_rank0(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` evaluated on rank 0 and sent to every rank; an exception there is raised on every rank
        (a UserError as itself), so that no rank waits for a rank that has stopped."""
        import torch.distributed as dist

        payload: list = [None]
        error: BaseException | None = None
        if self.rank == 0:
            try:
                payload = [("ok", fn())]
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other ranks know
                error, payload = exc, [("error", str(exc) if isinstance(exc, UserError) else
                                        f"rank 0 failed: {type(exc).__name__}: {exc}")]
        dist.broadcast_object_list(payload, src=0)
        if error is not None:
            raise error
        kind, value = payload[0]
        if kind == "error":
            raise UserError(value)
        return value

    def sync_trainer(self, trainer: Any) -> None:
        """Give every rank rank 0's weights and trainer state when rank 0 resumed a run (new runs start equal:
        same seeds on every rank)."""
        import torch.distributed as dist

        resumed = self.rank == 0 and trainer.step > 0
        payload = [(trainer.model.export_state_dict(), trainer.state_dict()) if resumed else None]
        dist.broadcast_object_list(payload, src=0)
        if self.rank == 0 or payload[0] is None:
            return
        trainer.restore(*payload[0])

    def close(self) -> None:
        import torch.distributed as dist

        if self.scratch is not None:
            shutil.rmtree(self.scratch.parent, ignore_errors=True)
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def start(strategy: str, device: str) -> Group:
    """Join the process group of a torchrun launch (or an already initialised one) for ``strategy``.

    Raises:
        UserError: an unknown strategy, or no launcher environment (``RANK``/``WORLD_SIZE`` unset).
    """
    import torch
    import torch.distributed as dist

    if strategy not in PARALLEL[1:]:
        raise UserError(f"unknown --parallel {strategy!r}; valid: {', '.join(PARALLEL)}")
    owns = False
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise UserError(f"--parallel {strategy} runs under a launcher that starts one process per device: "
                            f"torchrun --nproc_per_node=G -m collapse_lab train --parallel {strategy} ...")
        cuda = torch.device(device).type == "cuda"
        if cuda:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
        owns = True
    elif torch.device(device).type == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"
    return Group(strategy, dist.get_rank(), dist.get_world_size(), device, owns)
