"""Experiment tracking: the run's metrics, λ/μ statistics and spectra time series sent to TensorBoard or MLflow
beside ``metrics.csv`` (config key ``tracker``; README "Tracking").

Importing the package registers the backends without importing their libraries (they load when a run opens one).
"""

from collapse_lab.tracking import mlflow_tracker, tensorboard_tracker  # noqa: F401 - registers the backends
from collapse_lab.tracking.base import (
    TRACKER_NAMES,
    TRACKERS,
    Tracker,
    metric_points,
    normalize_trackers,
    trace_points,
)
from collapse_lab.tracking.session import TrackingSession

__all__ = ["TRACKERS", "TRACKER_NAMES", "Tracker", "TrackingSession", "metric_points", "normalize_trackers",
           "trace_points"]
