"""The one stderr line per finished run of a sweep run off a terminal (a background job's log), with its ETA.

Apart from :mod:`collapse_lab.sweep.runner` so that the runner stays one concern (plan, execute, record).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Sequence

from collapse_lab.sweep.record import now
from collapse_lab.sweep.staleness import mismatch_text

__all__ = ["_RunLog"]


class _RunLog:
    """One stderr line per finished run when no progress bar is shown (logs of background sweeps).

    The ETA weights every run by its number of students N (a run's cost grows about linearly in N) and prices
    the weight left with the finished runs' own durations, shared by the ``jobs`` runs that go at once:
    ``(Σ seconds / Σ N over finished runs) · (N left) / jobs`` (so the runs still in flight do not bias it).
    """

    def __init__(self, tasks: Sequence[Any], enabled: bool, jobs: int = 1) -> None:
        self.enabled = enabled
        self.jobs = max(1, int(jobs))
        self.weights = [max(1, int(t.config.get("n") or 1)) for t in tasks]
        self.total = sum(self.weights)
        self.done = 0
        self.count = 0
        self.seconds = 0.0
        self.start = time.perf_counter()

    def eta(self) -> float:
        """Seconds left by the estimate above (NaN before the first finished run)."""
        if not self.done or self.seconds <= 0:
            return float("nan")
        return self.seconds / self.done * (self.total - self.done) / self.jobs

    def finished(self, index: int, outcome: Any) -> None:
        self.done += self.weights[index]
        self.count += 1
        self.seconds += max(float(outcome.seconds), 0.0)
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        error = f": {outcome.error.splitlines()[0]}" if outcome.error else ""
        if outcome.resume_error and not outcome.error:  # a failed outcome already names it in its error
            error = f" from scratch (resuming failed: {outcome.resume_error.splitlines()[0]})"
        if getattr(outcome, "dataset_mismatch", None):
            error += f"; {mismatch_text(outcome.dataset_mismatch)}"
        print(f"{now()} [{self.count}/{len(self.weights)}] {outcome.name} {outcome.status}{error} in "
              f"{outcome.seconds:.0f} s; elapsed {elapsed / 60:.1f} min, eta {self.eta() / 60:.0f} min",
              file=sys.stderr, flush=True)
