"""Spectra during training: the collapse metrics of every hidden weight and embedding table, as a time series.

With ``spectra_every = k > 0`` the trainer records, inside the training process, the singular values of each
hidden Linear weight ``students.<m>.layers.<j>.linear.weight`` and each shared embedding table
``embedding.tables.<field>.weight`` (float64 Gram, :func:`~collapse_lab.spectral.streaming.matrix_spectrum`) and
their metrics (:func:`~collapse_lab.spectral.analysis.metric_rows`: knowledge abundance at the three thresholds —
σ > 4 as in KDEF, arXiv 2411.16122 Eqs. 3–4, σ above the Marchenko–Pastur bulk edge, σ > 0.1·σ_max —
information abundance, effective rank, stable rank, ...), each next to the mean over same-shape Gaussian matrices of
equal Frobenius norm and the ratio to it. Rows go to ``<run>/spectra_trace.csv``::

    step, epoch, member, target, name, rows, cols, metric, value, baseline, ratio

``member`` is the student index for weights and ``shared`` for embedding tables; ``epoch`` is the epoch the step
belongs to (0 for the initialisation). Recorded steps: 0 (the initialisation), every k-th step
(``spectra_unit = step``) or the end of every k-th epoch (``spectra_unit = epoch``), and the last step of
training.

**Resume.** The trace is rewritten atomically at the end of every epoch, *before* the trainer state, so the file
holds every row up to the saved state's step. ``--resume`` keeps the rows with ``step <=`` that step and drops the
rest (rows of an epoch that was cut short are recomputed from the same weights), so the trace of an interrupted
and resumed run equals that of an uninterrupted one. Recording reads the weights only (no RNG), so training with
and without it is identical.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_write_text
from collapse_lab.io.contract import TRACE_COLUMNS, model_matrices, read_rows, read_trace

__all__ = ["SpectraTrace", "TRACE_COLUMNS", "SPECTRA_UNITS", "trace_matrices", "read_trace"]

SPECTRA_UNITS = ("epoch", "step")

Row = Tuple[int, int, str, str, str, int, int, str, float, float, float]


def trace_matrices(description: Dict[str, Any]) -> List[Tuple[str, str, str]]:
    """``(target, member, tensor name)`` of every matrix the trace follows, from ``model.describe()`` (the student
    matrices through :func:`collapse_lab.io.contract.model_matrices`).

    Example:
        >>> trace_matrices({"fields": [{"table": "embedding.tables.u.weight"}],
        ...                 "hidden_layers": [{"member": 0, "weight": "students.0.layers.0.linear.weight"}]})
        [('weights', '0', 'students.0.layers.0.linear.weight'), ('embeddings', 'shared', 'embedding.tables.u.weight')]
    """
    out = [("weights", str(m.member), m.weight) for m in model_matrices({"model": description}, "model.describe()")]
    tables = dict.fromkeys(f["table"] for f in description["fields"])  # tables shared by fields appear once
    return out + [("embeddings", "shared", name) for name in tables]


def _fmt(value: float) -> str:
    return repr(float(value))


def _num(text: str) -> float:
    """A CSV number; an empty field (how pandas writes NaN) is NaN."""
    return float(text) if text != "" else float("nan")


class SpectraTrace:
    """The spectra time series of one run: what to record when, the rows, and ``spectra_trace.csv``.

    Args:
        path: the CSV file (``RunDir.spectra_trace``).
        description: ``model.describe()`` (names the matrices).
        every: record every ``every`` units (>= 1).
        unit: ``epoch`` or ``step``.
    """

    def __init__(self, path: Union[str, Path], description: Dict[str, Any], every: int, unit: str = "epoch") -> None:
        if unit not in SPECTRA_UNITS:
            raise UserError(f"spectra_unit must be one of {', '.join(SPECTRA_UNITS)}, got {unit!r}")
        if every < 1:
            raise UserError(f"spectra_every must be >= 1 to record spectra, got {every!r}")
        self.path = Path(path)
        self.every, self.unit = int(every), unit
        self.matrices = trace_matrices(description)
        self.rows: List[Row] = []
        self.last_step = -1  # the step of the last recorded rows

    def __len__(self) -> int:
        return len(self.rows)

    # ---- when -----------------------------------------------------------------------------------------------
    def due_after_step(self, step: int) -> bool:
        """Whether to record after optimizer step ``step`` (step unit)."""
        return self.unit == "step" and step % self.every == 0 and step != self.last_step

    def due_at_epoch_end(self, epoch: int, step: int, last: bool) -> bool:
        """Whether to record at the end of ``epoch`` (epoch unit, or the last epoch of training)."""
        if step == self.last_step:
            return False
        return last or (self.unit == "epoch" and epoch % self.every == 0)

    # ---- what -----------------------------------------------------------------------------------------------
    def record(self, model: Any, epoch: int, step: int) -> None:
        """Append the metrics of every traced matrix of ``model`` at ``(epoch, step)``."""
        from collapse_lab.spectral.analysis import metric_rows
        from collapse_lab.spectral.streaming import matrix_spectrum

        state = model.export_state_dict()
        for target, member, name in self.matrices:
            if name not in state:
                raise UserError(f"spectra trace: the model has no tensor {name!r}")
            matrix = state[name].detach().cpu().numpy()
            if matrix.ndim == 3 and matrix.shape[2] == 1:  # a conv1d / CIN weight (out, in, 1): its (out, in) matrix
                matrix = matrix[..., 0]
            sp = matrix_spectrum(matrix, progress=False)
            for row in metric_rows(target, sp, bookkeeping=False):
                self.rows.append((int(step), int(epoch), member, target, name, sp.rows, sp.cols, row["metric"],
                                  row["value"], row["baseline"], row["ratio"]))
        self.last_step = int(step)

    # ---- file -----------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Rewrite ``spectra_trace.csv`` atomically (an interruption never leaves a truncated file)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(TRACE_COLUMNS)
        for row in self.rows:
            writer.writerow([*row[:7], row[7], *(_fmt(v) for v in row[8:])])
        atomic_write_text(self.path, buf.getvalue())

    def load(self, through_step: int) -> None:
        """Read the file back for ``--resume``, keeping the rows of steps ``<= through_step`` (the saved state)."""
        def parse(r: List[str]) -> Row:
            step, epoch, member, target, name, nrows, ncols, metric, value, base, ratio = r
            return (int(step), int(epoch), member, target, name, int(nrows), int(ncols), metric, _num(value),
                    _num(base), _num(ratio))

        rows = read_rows(self.path, TRACE_COLUMNS, parse, "spectra trace")
        self.rows = [r for r in rows if r[0] <= through_step]
        steps = [r[0] for r in self.rows]
        self.last_step = max(steps) if steps else -1

    def frame(self) -> Any:
        """The rows as a pandas DataFrame with :data:`TRACE_COLUMNS`."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(TRACE_COLUMNS))
