"""FuxiCTR 2.0.x's plateau rule: learning-rate decay and early stopping on the validation ensemble AUC.

After every evaluation with monitored value ``v`` (docs/method.md §6)::

    if v > best + min_delta:   best <- v; counter <- 0; save the best checkpoint
    else:                      lr <- max(lr * factor, min_lr); counter <- counter + 1
    stop when counter >= patience

The learning-rate half is torch's ``ReduceLROnPlateau(mode="max", factor, patience=0, threshold=min_delta,
threshold_mode="abs", min_lr)`` — with ``patience=0`` it decays on every evaluation without improvement, exactly
FuxiCTR's ``reduce_learning_rate``. The stopping counter is kept here because ReduceLROnPlateau resets its own
counter after each decay.

Example:
    >>> import torch
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    >>> mon = PlateauMonitor(opt, factor=0.1, min_lr=1e-6, patience=2)
    >>> [mon.step(v, epoch=e, step=e) for e, v in enumerate([0.70, 0.71, 0.71, 0.7100005, 0.72], 1)]
    [True, True, False, False, True]
    >>> mon.best, mon.best_epoch, mon.counter, f"{opt.param_groups[0]['lr']:.0e}", mon.should_stop
    (0.72, 5, 0, '1e-05', False)
"""

from __future__ import annotations

import math
from typing import Any, Dict

__all__ = ["PlateauMonitor"]


class PlateauMonitor:
    """Tracks the best validation value, decays the learning rate on plateaus and decides when to stop.

    Args:
        optimizer: the optimizer whose learning rate decays.
        factor: multiplicative decay (0.1).
        min_lr: learning-rate floor (1e-6).
        patience: evaluations without improvement before stopping (2).
        min_delta: an improvement must exceed the best value by more than this (1e-6).
    """

    def __init__(self, optimizer: Any, factor: float = 0.1, min_lr: float = 1e-6, patience: int = 2,
                 min_delta: float = 1e-6) -> None:
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        self.optimizer = optimizer
        self.min_delta = float(min_delta)
        self.patience = int(patience)
        # factor 1.0 means "no decay": ReduceLROnPlateau rejects factor >= 1, so it is simply not created
        self.scheduler = None if factor >= 1.0 else ReduceLROnPlateau(
            optimizer, mode="max", factor=factor, patience=0, threshold=min_delta, threshold_mode="abs",
            min_lr=min_lr)
        self.best = -math.inf
        self.best_epoch = 0
        self.best_step = 0
        self.counter = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def should_stop(self) -> bool:
        return self.counter >= self.patience

    def step(self, value: float, epoch: int, step: int) -> bool:
        """Record one evaluation; return True if it improved on the best value."""
        improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.best_step, self.counter = float(value), int(epoch), int(step), 0
        else:
            self.counter += 1
        if self.scheduler is not None:
            self.scheduler.step(value)
        return improved

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_step": self.best_step,
                "counter": self.counter,
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch, self.best_step = int(state["best_epoch"]), int(state["best_step"])
        self.counter = int(state["counter"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
