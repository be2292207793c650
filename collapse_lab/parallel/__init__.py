"""Multi-process training of one run: ``--parallel data`` (the batch split) and ``--parallel ensemble`` (the
students split), launched by ``torchrun``; the loss and the checkpoints equal single-process training
(docs/architecture.md §11)."""

from collapse_lab.parallel.group import PARALLEL, Group, start

__all__ = ["PARALLEL", "Group", "start"]
