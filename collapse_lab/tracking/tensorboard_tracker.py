"""``tracker=tensorboard``: the run's scalars as TensorBoard event files in ``<run>/tensorboard/``.

Written with :class:`torch.utils.tensorboard.SummaryWriter` (needs the ``tensorboard`` package, extra ``tb``),
as double-precision scalar summaries (``new_style``), so the values read back equal ``metrics.csv`` exactly. The
resolved config goes in once as the text summary ``config``.

**Resume.** Every writer opens with ``purge_step`` (a ``SessionLog.START`` event): 0 for a new run, the saved
state's step on ``--resume``. TensorBoard's reader (the server's ``plugin_event_accumulator``) takes the first
START of a run as its beginning and every later one as a restart, discarding the events of earlier files at that
step or later — which the resumed run writes again, so no step appears twice. (A new run must write its START too:
otherwise the first restart would be taken for the beginning and purge nothing.) View with
``tensorboard --logdir <run or sweep directory>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Sequence

from collapse_lab.tracking.base import TRACKERS, Point, Tracker

__all__ = ["TensorBoardTracker", "TENSORBOARD_DIR"]

#: the event-file directory inside a run directory
TENSORBOARD_DIR = "tensorboard"


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """Scalars to ``<run>/tensorboard/events.out.tfevents.*``."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: Dict[str, Any], resume_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=resume_step or 0, flush_secs=60)
        if not resume_step:  # a new run, or one starting over (purge_step 0 drops the old config text too)
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=1, sort_keys=True) + "\n```", 0)

    def log(self, points: Sequence[Point]) -> None:
        for tag, value, step in points:
            self.writer.add_scalar(tag, value, global_step=step, new_style=True, double_precision=True)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()
