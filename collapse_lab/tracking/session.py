"""The trackers of one run: forward the new ``metrics.csv`` and ``spectra_trace.csv`` rows to every backend.

:class:`TrackingSession` is a trainer callback (``Trainer(callbacks=...)``): after each evaluation and at the end
of each epoch it sends the rows the trainer added since the last call, then flushes every backend. The end of an
epoch is reported after ``checkpoints/last`` is saved, so a kill can fall between the two; therefore a resumed run
sends again every row at or after the saved state's step ``r`` (its last evaluation, its epoch-end spectra), and
the backends first drop what they hold from step ``r`` on (:class:`~collapse_lab.tracking.base.Tracker`). Rows
before ``r`` are not sent twice, rows after ``r`` are recomputed by the resumed run exactly as an uninterrupted run
computes them (docs/architecture.md §6.4), so each backend ends with the scalars of an uninterrupted run.

A backend added on a resume (the config key ``tracker`` is not part of the config hash, so it may change between
the attempts) holds nothing of the run yet: it is opened as for a run resumed from step 0 and is sent every row,
so it too ends with the scalars of an uninterrupted run. A backend dropped on a resume keeps what it had.

The scores of the best checkpoint (``_finish`` in training/api.py) go out through :meth:`TrackingSession.final`
as ``best/...`` tags at the last training step, which a resume also drops and resends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from collapse_lab.tracking.base import Point, Tracker, metric_points, open_trackers, trace_points

__all__ = ["TrackingSession"]


class TrackingSession:
    """Fan-out of one run's rows to its backends.

    Args:
        names: the normalised config key ``tracker``.
        run_dir: the run directory being written.
        config: the resolved config as a dict.
        resume_step: ``None`` for a new run, else the step of the trainer state the run resumes from (0 when no
            epoch had finished).
        added: on a resume, the ``names`` the run did not report to before: sent every row, not only those from
            ``resume_step`` on.
    """

    def __init__(self, names: Sequence[str], run_dir: Path, config: Mapping[str, Any],
                 resume_step: int | None, added: Sequence[str] = ()) -> None:
        self.resume_step = resume_step
        later = [n for n in names if n in added] if resume_step else []  # from step 0 all rows go out anyway
        self.trackers: List[Tracker] = open_trackers([n for n in names if n not in later], Path(run_dir), config,
                                                     resume_step)
        self.sent_metrics: int | None = None  # rows of metrics.csv already sent (None: not yet known)
        self.sent_trace: int | None = None
        self.added: TrackingSession | None = None  # the backends in ``later``, as a run resumed from step 0
        if later:
            try:
                self.added = TrackingSession(later, run_dir, config, 0)
            except BaseException:
                self.close("failed")
                raise

    def __bool__(self) -> bool:
        return bool(self.trackers) or bool(self.added)

    def _first_unsent(self, rows: Sequence[Sequence[Any]], step_column: int) -> int:
        """Rows restored by a resume that a backend already holds: those before the resume step (rows are in
        step order); a new run has sent nothing."""
        if self.resume_step is None:
            return 0
        count = 0
        while count < len(rows) and rows[count][step_column] < self.resume_step:
            count += 1
        return count

    def sync(self, metrics_rows: Sequence[Sequence[Any]], trace_rows: Sequence[Sequence[Any]]) -> None:
        """Send the rows added since the last call and flush every backend."""
        if self.added is not None:
            self.added.sync(metrics_rows, trace_rows)
        if not self.trackers:
            return
        if self.sent_metrics is None:
            self.sent_metrics = self._first_unsent(metrics_rows, 1)
        if self.sent_trace is None:
            self.sent_trace = self._first_unsent(trace_rows, 0)
        points = metric_points(metrics_rows[self.sent_metrics:]) + trace_points(trace_rows[self.sent_trace:])
        self.sent_metrics, self.sent_trace = len(metrics_rows), len(trace_rows)
        self._send(points)

    def final(self, rows: Sequence[Sequence[Any]], step: int) -> None:
        """Send the best checkpoint's valid/test ``rows`` as ``best/...`` at the last training ``step``."""
        if self.added is not None:
            self.added.final(rows, step)
        if self.trackers:
            self._send(metric_points(rows, prefix="best/", step=step))

    def _send(self, points: List[Point]) -> None:
        for tracker in self.trackers:
            if points:
                tracker.log(points)
            tracker.flush()

    def __call__(self, event: str, info: Dict[str, Any]) -> None:
        """The trainer callback: forward after ``evaluation`` and ``epoch_end``."""
        trainer = info["trainer"]
        trace = trainer.trace.rows if trainer.trace is not None else []
        self.sync(trainer.metrics.rows, trace)

    def close(self, status: str) -> None:
        """Close every backend (``complete``, ``failed`` or ``stopped``)."""
        trackers, self.trackers = self.trackers, []
        added, self.added = self.added, None
        for tracker in trackers:
            tracker.close(status)
        if added is not None:
            added.close(status)
