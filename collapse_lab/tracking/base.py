"""The tracker interface: what a run reports, as ``(tag, value, step)`` scalars, and the registry of backends.

Every run writes ``metrics.csv`` and ``spectra_trace.csv`` (the ``csv`` tracker; ``--resume`` and the analysis
read them, so they are always on). The config key ``tracker`` adds backends from :data:`TRACKERS`
(``tensorboard``, ``mlflow``) that receive the same rows, mapped to scalars by :func:`metric_points` and
:func:`trace_points`:

=====================================================  =====================================================
row                                                    scalar tag (step = the row's step)
=====================================================  =====================================================
metrics.csv ``epoch,step,split,member,metric,value``   ``<split>/<member>/<metric>`` (``valid/ensemble/auc``,
                                                       ``train/ensemble/loss``, ``train/0/lambda``,
                                                       ``train/ensemble/mu_mean`` ...)
the best checkpoint's valid/test rows (end of run)     ``best/<split>/<member>/<metric>`` at the last step
spectra_trace.csv ``...,name,...,metric,value,         ``spectra/<name>/<metric>``, ``..._baseline``,
baseline,ratio``                                       ``..._ratio``
=====================================================  =====================================================

Characters outside ``[A-Za-z0-9_-./ :]`` in a tag become ``_`` (MLflow's rule for metric names); missing (NaN)
values are skipped, as in ``metrics.csv`` (docs/architecture.md §6.3).
"""

from __future__ import annotations

import abc
import importlib.util
import math
import re
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Sequence, Tuple

from collapse_lab.errors import UserError
from collapse_lab.registry import Registry

__all__ = ["Tracker", "TRACKERS", "TRACKER_NAMES", "REQUIREMENTS", "Point", "normalize_trackers", "metric_points",
           "trace_points", "sanitize_tag", "require"]

#: backends selected by the config key ``tracker`` (``csv`` is not one: it is the run directory itself)
TRACKERS = Registry("tracker")
#: the Python module each backend needs, and the extra that installs it
REQUIREMENTS = {"tensorboard": ("tensorboard", "tb"), "mlflow": ("mlflow", "mlflow")}
#: every name the config key ``tracker`` accepts, ``csv`` first
TRACKER_NAMES: Tuple[str, ...] = ("csv", "tensorboard", "mlflow")

Point = Tuple[str, float, int]  # (tag, value, step)
_BAD_TAG = re.compile(r"[^A-Za-z0-9_\-./ :]")


class Tracker(abc.ABC):
    """A backend that stores scalar time series beside the run's CSV files.

    Args:
        run_dir: the run directory (the backend keeps its store inside it).
        config: the resolved config as a dict (recorded once, as parameters or text).
        resume_step: ``None`` for a new run; on ``--resume`` the step of the saved trainer state (0 when the run
            starts over): everything the store holds at this step or later is dropped, as the trainer sends
            those rows again (TensorBoard's ``purge_step``; MLflow skips a ``(tag, step)`` it already has).
    """

    name = "tracker"

    @abc.abstractmethod
    def log(self, points: Sequence[Point]) -> None:
        """Store ``points`` (tag, value, step)."""

    def flush(self) -> None:  # noqa: B027 - an optional hook, a no-op unless a backend buffers
        """Make everything logged so far durable (called before the trainer state that counts it is saved)."""

    def close(self, status: str) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """End the run; ``status`` is ``complete``, ``failed`` or ``stopped``."""


def require(name: str) -> None:
    """Raise a one-line :class:`UserError` with the install hint when backend ``name``'s library is missing."""
    module, extra = REQUIREMENTS[name]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or shadowed install counts as missing
        found = False
    if not found:
        raise UserError(f"tracker {name!r} needs the {module} package, which is not installed: "
                        f"pip install 'collapse-lab[{extra}]'")


def normalize_trackers(value: Any) -> List[str]:
    """The config key ``tracker`` as a list: ``csv`` first, then each other backend once, in the given order.

    Example:
        >>> normalize_trackers("tensorboard"), normalize_trackers(["mlflow", "csv", "mlflow"])
        (['csv', 'tensorboard'], ['csv', 'mlflow'])

    Raises:
        UserError: not a name or a list of names, an unknown name, or a backend whose library is missing.
    """
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UserError(f"config key 'tracker': expected one of {', '.join(TRACKER_NAMES)} or a list of them, "
                        f"got {value!r}")
    out = ["csv"]
    for name in names:
        if name not in TRACKER_NAMES:
            raise UserError(f"config key 'tracker': expected one of {', '.join(TRACKER_NAMES)} or a list of them, "
                            f"got {name!r}")
        if name not in out:
            require(name)
            out.append(name)
    return out


def sanitize_tag(tag: str) -> str:
    """``tag`` with every character MLflow rejects in a metric name replaced by ``_``.

    Example:
        >>> sanitize_tag("spectra/embedding.tables.genre|year.weight/sv_max")
        'spectra/embedding.tables.genre_year.weight/sv_max'
    """
    return _BAD_TAG.sub("_", tag)


def _finite(value: float) -> bool:
    return value is not None and not math.isnan(float(value))


def metric_points(rows: Iterable[Sequence[Any]], prefix: str = "", step: int | None = None) -> List[Point]:
    """Scalars of ``metrics.csv`` rows ``(epoch, step, split, member, metric, value)``.

    Example:
        >>> metric_points([(1, 10, "valid", "ensemble", "auc", 0.75), (1, 10, "train", 0, "lambda", 0.5)])
        [('valid/ensemble/auc', 0.75, 10), ('train/0/lambda', 0.5, 10)]
        >>> metric_points([(2, 10, "test", "ensemble", "auc", 0.7)], prefix="best/", step=30)
        [('best/test/ensemble/auc', 0.7, 30)]
    """
    return [(sanitize_tag(f"{prefix}{split}/{member}/{metric}"), float(value), int(s if step is None else step))
            for _, s, split, member, metric, value in rows if _finite(value)]


def trace_points(rows: Iterable[Sequence[Any]]) -> List[Point]:
    """Scalars of ``spectra_trace.csv`` rows ``(step, epoch, member, target, name, rows, cols, metric, value,
    baseline, ratio)``.

    Example:
        >>> trace_points([(0, 0, "0", "weights", "students.0.layers.0.linear.weight", 4, 8, "sv_max", 2.0, 1.0,
        ...                2.0)])  # doctest: +NORMALIZE_WHITESPACE
        [('spectra/students.0.layers.0.linear.weight/sv_max', 2.0, 0),
         ('spectra/students.0.layers.0.linear.weight/sv_max_baseline', 1.0, 0),
         ('spectra/students.0.layers.0.linear.weight/sv_max_ratio', 2.0, 0)]
    """
    out: List[Point] = []
    for step, _, _, _, name, _, _, metric, value, baseline, ratio in rows:
        for suffix, v in (("", value), ("_baseline", baseline), ("_ratio", ratio)):
            if _finite(v):
                out.append((sanitize_tag(f"spectra/{name}/{metric}{suffix}"), float(v), int(step)))
    return out


def open_trackers(names: Sequence[str], run_dir: Path, config: Mapping[str, Any],
                  resume_step: int | None) -> List[Tracker]:
    """The backends of ``names`` (``csv`` needs none), opened on ``run_dir``."""
    opened: List[Tracker] = []
    try:
        for name in names:
            if name != "csv":
                require(name)
                opened.append(TRACKERS.create(name, Path(run_dir), dict(config), resume_step))
    except BaseException:
        for tracker in opened:
            tracker.close("failed")
        raise
    return opened
