"""``tracker=mlflow``: the run's scalars in an MLflow file store inside the run directory, ``<run>/mlruns``.

Needs ``mlflow`` (``mlflow-skinny`` suffices; extra ``mlflow``); works offline: nothing leaves the machine. One
experiment ``collapse-lab`` holds one MLflow run named after the run directory, with the resolved config as
parameters and every scalar as a metric history (``MlflowClient.log_batch``, 1000 metrics per call). MLflow 3
keeps the file store in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``; the tracker sets
that variable only around its own calls. On ``--resume`` the same MLflow run continues, and a ``(tag, step)`` the
store already holds from the saved state's step on is not logged again (the resumed run recomputes those rows with
the same values), so no step appears twice. Browse with
``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <run>/mlruns``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Sequence, Set, Tuple

from collapse_lab.tracking.base import TRACKERS, Point, Tracker

__all__ = ["MlflowTracker", "MLFLOW_DIR", "EXPERIMENT"]

#: the file store inside a run directory
MLFLOW_DIR = "mlruns"
EXPERIMENT = "collapse-lab"
_BATCH = 1000  # MLflow's limit of metrics per log_batch call
_STATUS = {"complete": "FINISHED", "failed": "FAILED", "stopped": "KILLED"}


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """``MLFLOW_ALLOW_FILE_STORE=true`` for the duration of one call, the caller's value restored after."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def store_uri(run_dir: Path) -> str:
    """``file://`` URI of the run's MLflow store."""
    return (Path(run_dir).absolute() / MLFLOW_DIR).as_uri()


@TRACKERS.register("mlflow")
class MlflowTracker(Tracker):
    """Scalars to the MLflow file store ``<run>/mlruns``."""

    name = "mlflow"

    def __init__(self, run_dir: Path, config: Dict[str, Any], resume_step: int | None) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        with _file_store_allowed():
            self.client = MlflowClient(tracking_uri=store_uri(run_dir))
            experiment = self.client.get_experiment_by_name(EXPERIMENT)
            experiment_id = experiment.experiment_id if experiment is not None else \
                self.client.create_experiment(EXPERIMENT)
            runs = self.client.search_runs([experiment_id], max_results=1) if resume_step is not None else []
            self.logged: Set[Tuple[str, int]] = set()
            if runs:
                self.run_id = runs[0].info.run_id
                self.logged = self._logged_from(resume_step or 0)
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                self.run_id = self.client.create_run(experiment_id, run_name=Path(run_dir).name).info.run_id
                params = [Param(k, str(v)[:500]) for k, v in sorted(config.items())]  # 500: the oldest limit
                for start in range(0, len(params), 100):  # MLflow's limit of params per call
                    self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _logged_from(self, step: int) -> Set[Tuple[str, int]]:
        """``(tag, step)`` of every point the store holds at ``step`` or later."""
        out: Set[Tuple[str, int]] = set()
        for key in self.client.get_run(self.run_id).data.metrics:
            out.update((key, m.step) for m in self.client.get_metric_history(self.run_id, key) if m.step >= step)
        return out

    def log(self, points: Sequence[Point]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, value, now, step) for tag, value, step in points if (tag, step) not in self.logged]
        with _file_store_allowed():
            for start in range(0, len(metrics), _BATCH):
                self.client.log_batch(self.run_id, metrics=metrics[start:start + _BATCH])

    def close(self, status: str) -> None:
        with _file_store_allowed():
            self.client.set_terminated(self.run_id, _STATUS.get(status, "FAILED"))
