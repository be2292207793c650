"""``collapse-lab spectrum A B``: two runs or checkpoints side by side, matrix by matrix.

Both inputs are analysed with the same options (:func:`collapse_lab.spectral.analyze`); matrices are matched
by ``(target, tensor name)`` — a run directory's tensor names are stable (README "Run directory") — and every
metric of a matched matrix gets one tidy row with ``a``, ``b`` and ``diff = b − a`` (:data:`DIFF_COLUMNS`).
Matrices found on one side only are listed, not compared; a matched pair whose shapes differ is compared and
noted (a wider layer has a different attainable rank, so its ranks are not directly comparable). The
bookkeeping rows (floors, excluded rows) are not differenced.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_path
from collapse_lab.spectral.analysis import BOOKKEEPING, KA_METRICS, analyze, json_records
from collapse_lab.spectral.summary import _VIEWS, short_name

__all__ = ["DIFF_COLUMNS", "SpectrumComparison", "compare_frames", "compare_spectra", "format_comparison",
           "write_comparison", "comparison_json"]

DIFF_COLUMNS = ["target", "member", "name", "metric", "a", "b", "diff"]
_KEY = ["target", "name"]


@dataclass
class SpectrumComparison:
    """The per-matrix metric differences of B against A, and what could not be matched."""

    a: str
    b: str
    frame: Any  # pandas.DataFrame with DIFF_COLUMNS
    only_a: List[str] = field(default_factory=list)  # "<target>:<name>"
    only_b: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        """A JSON-able dict (NaN -> null) for ``collapse-lab spectrum A B --json``."""
        return {"a": self.a, "b": self.b, "matched": int(self.frame[_KEY].drop_duplicates().shape[0]),
                "only_a": self.only_a, "only_b": self.only_b, "notes": self.notes,
                "rows": json_records(self.frame)}


def _matrices(df: Any) -> Any:
    return df[_KEY + ["member", "rows", "cols"]].drop_duplicates(_KEY)


def compare_frames(df_a: Any, df_b: Any, a: str = "A", b: str = "B") -> SpectrumComparison:
    """Match two tidy spectrum tables (:data:`~collapse_lab.spectral.analysis.COLUMNS`) by (target, name).

    Example:
        >>> import pandas as pd
        >>> row = dict(source="f", member="shared", convention="", baseline=1.0, ratio=1.0, rows=4, cols=2)
        >>> A = pd.DataFrame([dict(row, target="weights", name="w", metric="effective_rank", value=1.5),
        ...                   dict(row, target="weights", name="old", metric="effective_rank", value=2.0)])
        >>> B = pd.DataFrame([dict(row, target="weights", name="w", metric="effective_rank", value=1.25)])
        >>> c = compare_frames(A, B)
        >>> c.frame[["name", "a", "b", "diff"]].values.tolist(), c.only_a, c.only_b
        ([['w', 1.5, 1.25, -0.25]], ['weights:old'], [])
    """
    import pandas as pd

    mats_a, mats_b = _matrices(df_a), _matrices(df_b)
    both = mats_a.merge(mats_b, on=_KEY, suffixes=("_a", "_b"), how="outer", indicator=True)
    label = both["target"] + ":" + both["name"]
    only_a = label[both["_merge"] == "left_only"].tolist()
    only_b = label[both["_merge"] == "right_only"].tolist()
    notes = []
    matched = both[both["_merge"] == "both"]
    for r in matched.itertuples():
        if (r.rows_a, r.cols_a) != (r.rows_b, r.cols_b):
            notes.append(f"{r.name}: shapes differ (A {int(r.rows_a)}x{int(r.cols_a)}, B {int(r.rows_b)}x"
                         f"{int(r.cols_b)}); rank-type metrics are bounded by different attainable ranks")
    metrics_a = df_a[~df_a["metric"].isin(BOOKKEEPING)]
    metrics_b = df_b[~df_b["metric"].isin(BOOKKEEPING)]
    pair = metrics_a[_KEY + ["member", "metric", "value"]].merge(
        metrics_b[_KEY + ["metric", "value"]], on=_KEY + ["metric"], suffixes=("_a", "_b"), how="inner", sort=False)
    frame = pd.DataFrame({"target": pair["target"], "member": pair["member"], "name": pair["name"],
                          "metric": pair["metric"], "a": pair["value_a"].astype(float),
                          "b": pair["value_b"].astype(float)})
    frame["diff"] = frame["b"] - frame["a"]
    return SpectrumComparison(a, b, frame[DIFF_COLUMNS].reset_index(drop=True), only_a, only_b, notes)


def compare_spectra(a: Any, b: Any, **options: Any) -> SpectrumComparison:
    """Analyse ``a`` and ``b`` (paths, modules or state dicts; the :func:`analyze` options apply to both) and
    compare them with :func:`compare_frames`. Nothing is written."""
    if options.get("out_dir") is not None:
        raise UserError("compare_spectra writes nothing; use write_comparison for spectrum_diff.csv")
    for side in (a, b):  # fail before the (possibly long) analysis of the other side
        if isinstance(side, (str, os.PathLike)) and not Path(side).exists():
            raise UserError(f"{side}: no such file or directory")
    df_a, df_b = analyze(a, **options), analyze(b, **options)
    result = compare_frames(df_a, df_b, _label(a, df_a), _label(b, df_b))
    own = [f"{side}: {n}" for side, df in (("A", df_a), ("B", df_b)) for n in df.attrs.get("notes", [])]
    result.notes = own + result.notes
    return result


def _label(obj: Any, df: Any) -> str:
    """The path as given, or ``module`` / ``state_dict`` for an in-memory input."""
    return str(obj) if isinstance(obj, (str, os.PathLike)) else df.attrs.get("kind", "state_dict")


def write_comparison(result: SpectrumComparison, out_dir: Any) -> Path:
    """Write ``spectrum_diff.csv`` (:data:`DIFF_COLUMNS`) into ``out_dir`` atomically; return its path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    path = out / "spectrum_diff.csv"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            result.frame.to_csv(tmp, index=False, float_format="%.10g")
    except OSError as exc:
        raise UserError(f"{out}: cannot write spectrum_diff.csv: {exc.strerror or exc}") from None
    return path


def format_comparison(result: SpectrumComparison, header: str = "", threshold: str = "abs") -> str:
    """A readable table per target: the headline metric of A and B, then B − A of each summary metric
    (the columns of ``collapse-lab spectrum``'s summary; the weights show the KA of ``threshold``)."""
    import pandas as pd

    lines = [header, ""] if header else []
    lines.append(f"A = {result.a}\nB = {result.b}\n")
    df = result.frame
    for target, (title, columns) in _VIEWS.items():
        sub = df[df["target"] == target]
        if sub.empty:
            continue
        values = [(KA_METRICS[threshold] if m == "knowledge_abundance" else m, label)
                  for m, label, col in columns if col == "value"]
        head_metric, head_label = values[0]
        table = []
        for (member, name), one in sub.groupby(["member", "name"], sort=False):
            one = one.set_index("metric")
            row = {"member": member, "matrix": short_name(name)}
            if head_metric in one.index:
                row[f"{head_label} A"] = one.at[head_metric, "a"]
                row[f"{head_label} B"] = one.at[head_metric, "b"]
            for metric, label in values:
                row[f"d{label}"] = one.at[metric, "diff"] if metric in one.index else float("nan")
            table.append(row)
        frame = pd.DataFrame(table)
        if frame["member"].eq("shared").all():
            frame = frame.drop(columns="member")
        text = frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
        lines += [f"{title.split(':')[0]} (dX = B - A)", *("  " + ln for ln in text.splitlines()), ""]
    for side, names in (("A", result.only_a), ("B", result.only_b)):
        if names:
            lines.append(f"only in {side} (not compared): {', '.join(names)}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines).rstrip() + "\n"


def comparison_json(result: SpectrumComparison, written: Path | None = None) -> str:
    """The JSON text of :meth:`SpectrumComparison.to_json`, with the CSV path when one was written."""
    payload = result.to_json()
    payload["files"] = [str(written)] if written is not None else []
    return json.dumps(payload, indent=1, allow_nan=False)
