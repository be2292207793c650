"""Collect finished runs of a sweep into one tidy table (``results.csv``).

One row per run × member (``ensemble`` and every student ``0..N-1``) with the test and validation AUC and
logloss of that member, and per run (repeated on each of its rows):

* ``ensemble_auc``/``ensemble_logloss`` (test), ``best_student``/``worst_student`` (index of the highest/lowest
  student test AUC), ``best_student_auc``, ``worst_student_auc``, ``spread`` = best − worst student AUC and
  ``gap`` = ensemble AUC − best student AUC (docs/method.md §1, limitations 2 and 3), ``student_auc_sd`` = the
  standard deviation (ddof = 1) of the N student test AUCs (NaN for N = 1) and ``student_auc_diff_se`` = the
  test split's noise figure stored by training (DeLong's SE of a paired student AUC difference,
  :mod:`collapse_lab.training.delong`; NaN for runs trained before it was stored);
* ``lambda_mean``, ``lambda_std``, ``mu_mean``, ``mu_std`` (examination weights over the last epoch, from the
  manifest summary; empty when the method has none);
* from ``spectrum.csv`` when the run has been analysed: ``ka_layer<j>`` = knowledge abundance KA(W, τ) of this
  member's hidden Linear layer j (1-based: ``students.<k>.layers.<j-1>.linear.weight``), ``best_ka_layer<j>``
  = the same for the run's best student; the scale-free companions (τ is absolute, docs/method.md §14 C3)
  ``erank_ratio_layer<j>`` / ``ia_ratio_layer<j>`` = effective rank / information abundance of that weight
  divided by the same measure of a same-shape Gaussian matrix (the ``ratio`` column of ``spectrum.csv``; 1 =
  as spread out as random), with ``best_erank_ratio_layer<j>`` / ``best_ia_ratio_layer<j>`` for the best
  student; ``emb_ia_mean`` / ``emb_ia_ratio_mean`` / ``emb_erank_mean`` / ``emb_erank_ratio_mean`` = the mean
  over fields of the embedding tables' information abundance, its ratio to the same-shape Gaussian baseline,
  their effective rank and its ratio to the baseline (claim C9, :mod:`~collapse_lab.results.claims`);
* from ``spectra_trace.csv`` when the run recorded one (``spectra_every``, :mod:`collapse_lab.training.spectra`):
  ``emb_ia_ratio_change`` / ``emb_erank_ratio_change`` = the same mean ratio over the embedding tables at the
  last recorded step minus at step 0 (the initialisation): how far training moved the shared embedding.

``dataset`` is the dataset id recorded in the manifest (the config's ``dataset`` when absent). ``variant``
names the training recipe: ``vanilla-<fusion>``; ``kd``, ``dml``, ``kdef`` (mean fusion), or
``<method>-<fusion>`` for other fusions, plus the tags of the ablations and the capacity control
(:func:`collapse_lab.recipes.variant_of`: ``kdef-kd-only``, ``kdef-uniform``, ``vanilla-mean-capacity``...).
``n`` is the number of students, except for the capacity control: its one student has the parameters of
``width_match_n`` = K students and is compared at N = K. Config keys that vary across the sweep beyond
dataset/method/fusion/n/seed and the keys the variant encodes appear as ``cfg_<key>`` columns, so statistics
never pool different settings.

A directory without a readable manifest, a run that is not ``complete`` or has no test results is reported in
``skipped`` and left out; a run without ``spectrum.csv`` is kept (its spectral columns are empty) and noted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np
import pandas as pd

from collapse_lab.errors import UserError
from collapse_lab.io.contract import (
    MANIFEST,
    SPECTRA_TRACE,
    find_spectrum,
    model_matrices,
    read_manifest,
    read_spectrum_csv,
    student_summary,
)
from collapse_lab.recipes import results_n, variant_name, variant_of
from collapse_lab.results.dataset_hashes import mixed_hash_warnings

__all__ = [
    "SweepResults",
    "collect_results",
    "read_results_csv",
    "load_results",
    "find_run_dirs",
    "find_spectrum",
    "variant_name",
    "VARIANT_ORDER",
    "STANDARD_KEYS",
    "LAYER_MEASURES",
    "layer_columns",
]

#: display and comparison order of the recipes (baselines first, then the paper's methods, then the controls)
VARIANT_ORDER = ("vanilla-mean", "vanilla-mean-capacity", "vanilla-sum", "vanilla-concat", "kd", "dml", "kdef",
                 "kdef-kd-only", "kdef-dml-only", "kdef-uniform", "kdef-noem")
#: config keys that always get their own column in results.csv
STANDARD_KEYS = ("dataset", "method", "fusion", "n", "seed")
#: config keys that never distinguish results (paths, performance knobs)
_NEUTRAL_KEYS = ("data_root", "form", "num_threads", "deterministic", "save_every", "probe_rows", "tracker")
#: config keys that the variant name already encodes (:func:`collapse_lab.recipes.variant_of`)
_RECIPE_KEYS = ("exam", "exam_weights", "kdef_terms", "width_match_n")
#: per-layer measures of the hidden Linear weights collected per member (column ``<measure>_layer<j>``)
LAYER_MEASURES = ("ka", "erank_ratio", "ia_ratio")


@dataclass
class SweepResults:
    """The tidy results of a sweep plus what was left out."""

    sweep_dir: Path
    sweep_id: str
    results: pd.DataFrame
    run_dirs: Dict[str, Path]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    #: one line per dataset whose runs record several content hashes (:mod:`collapse_lab.results.dataset_hashes`)
    warnings: List[str] = field(default_factory=list)
    table_only: bool = False  # read from a results.csv: the run directories' files are not at hand

    def runs(self) -> pd.DataFrame:
        """One row per run (the ``ensemble`` rows)."""
        return self.results[self.results["member"] == "ensemble"].reset_index(drop=True)

    def students(self) -> pd.DataFrame:
        """One row per student of every run."""
        return self.results[self.results["member"] != "ensemble"].reset_index(drop=True)


def find_run_dirs(sweep_dir: Union[str, Path]) -> List[Path]:
    """Run directories of a sweep: ``<sweep_dir>/runs/*`` if present, else the sub-directories holding a
    ``manifest.json`` (a plain directory of runs), or ``sweep_dir`` itself when it is a single run."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir}: not a directory")
    runs_dir = sweep_dir / "runs"
    if runs_dir.is_dir():
        return sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if (sweep_dir / MANIFEST).exists():
        return [sweep_dir]
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / MANIFEST).exists())


def _sweep_id(sweep_dir: Path) -> str:
    try:
        return str(json.loads((sweep_dir / "sweep.json").read_text(encoding="utf-8"))["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return sweep_dir.resolve().name


def _finished_manifest(run_dir: Path) -> Tuple[Optional[Dict[str, Any]], str]:
    """The manifest of a finished run, or None and why the run is skipped."""
    if not (run_dir / MANIFEST).exists():
        return None, f"no {MANIFEST}"
    try:
        manifest = read_manifest(run_dir)
    except UserError as exc:
        return None, f"{MANIFEST} unreadable ({exc})"
    status = manifest.get("status")
    if status != "complete":
        return None, f"status {status!r} (not complete)"
    test = (manifest.get("results") or {}).get("test") or {}
    if "ensemble" not in test:
        return None, f"{MANIFEST} has no test results"
    return manifest, ""


def _spectral_columns(spectrum_dir: Optional[Path], n: int, manifest: Mapping[str, Any]
                      ) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
    """Per-member KA columns and per-run embedding columns from ``spectrum.csv``; the student matrices are the
    manifest's (:func:`collapse_lab.io.contract.model_matrices`), layer j of the manifest → column ``_layer<j+1>``."""
    if spectrum_dir is None:
        return {}, {}
    spec = read_spectrum_csv(spectrum_dir)
    per_member: Dict[str, Dict[str, float]] = {str(k): {} for k in range(n)}
    layer_of = {m.weight: (str(m.member), m.layer) for m in model_matrices(manifest)}
    weights = spec[spec["target"] == "weights"]
    for metric, column, source in (("knowledge_abundance", "ka", "value"), ("effective_rank", "erank_ratio", "ratio"),
                                  ("information_abundance", "ia_ratio", "ratio")):
        rows = weights[weights["metric"] == metric]
        for name, value in zip(rows["name"], pd.to_numeric(rows[source], errors="coerce"), strict=True):
            member, layer = layer_of.get(str(name), (None, -1))
            if member in per_member:
                per_member[member][f"{column}_layer{layer + 1}"] = float(value)
    emb = spec[spec["target"] == "embeddings"]
    run_cols: Dict[str, float] = {}
    ia = emb[emb["metric"] == "information_abundance"]
    erank = emb[emb["metric"] == "effective_rank"]
    if len(ia):
        run_cols["emb_ia_mean"] = float(ia["value"].mean())
        run_cols["emb_ia_ratio_mean"] = float(pd.to_numeric(ia["ratio"], errors="coerce").mean())
    if len(erank):
        run_cols["emb_erank_mean"] = float(erank["value"].mean())
        run_cols["emb_erank_ratio_mean"] = float(pd.to_numeric(erank["ratio"], errors="coerce").mean())
    return per_member, run_cols


#: spectra_trace.csv metric -> the per-run change column of the shared embedding's mean ratio
TRACE_CHANGES = {"information_abundance": "emb_ia_ratio_change", "effective_rank": "emb_erank_ratio_change"}


def _trace_columns(run_dir: Path) -> Dict[str, float]:
    """``emb_*_ratio_change`` from the run's ``spectra_trace.csv`` (empty without one or without step 0)."""
    path = run_dir / SPECTRA_TRACE
    if not path.is_file():
        return {}
    trace = pd.read_csv(path, dtype={"member": str})
    emb = trace[(trace["target"] == "embeddings") & trace["metric"].isin(list(TRACE_CHANGES))]
    out: Dict[str, float] = {}
    for metric, column in TRACE_CHANGES.items():
        per_step = pd.to_numeric(emb.loc[emb["metric"] == metric, "ratio"], errors="coerce").groupby(
            emb.loc[emb["metric"] == metric, "step"]).mean().dropna()
        if len(per_step) >= 2 and per_step.index.min() == 0:
            out[column] = float(per_step.iloc[-1] - per_step.loc[0])
    return out


def _metric(block: Mapping[str, Any], member: str, key: str) -> float:
    value = (block.get(member) or {}).get(key)
    return float(value) if value is not None else np.nan


def _sd(values: np.ndarray) -> float:
    """Standard deviation (ddof = 1) of the finite values; NaN with fewer than two."""
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if finite.size > 1 else np.nan


def _float(value: Any) -> float:
    return float(value) if value is not None else np.nan


def _run_rows(name: str, run_dir: Path, manifest: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    config = manifest.get("config") or {}
    results = manifest["results"]
    test, valid = results.get("test") or {}, results.get("valid") or {}
    n = int(config.get("n") or (manifest.get("model") or {}).get("num_students") or 0)
    members = ["ensemble"] + [str(k) for k in range(n)]
    gaps = student_summary(test, n)  # best/worst, spread, gap: the one definition (collapse_lab/io/contract.py)
    best = gaps["best_student"] if gaps["best_student"] is not None else -1
    worst = gaps["worst_student"] if gaps["worst_student"] is not None else -1
    summary = results.get("summary") or {}
    ens_auc = _metric(test, "ensemble", "auc")
    matrices = model_matrices(manifest) if (manifest.get("model") or {}).get("hidden_layers") is not None else []
    run: Dict[str, Any] = {
        "run": name,
        "variant": variant_of(config),
        **{key: config.get(key) for key in STANDARD_KEYS},
        "n": results_n(config),
        "dataset": (manifest.get("dataset") or {}).get("id") or config.get("dataset"),
        "ensemble_auc": ens_auc,
        "ensemble_logloss": _metric(test, "ensemble", "logloss"),
        "best_student": best,
        "worst_student": worst,
        **{key: gaps[key] for key in ("best_student_auc", "worst_student_auc", "spread", "gap", "student_auc_sd")},
        "student_auc_diff_se": _float(summary.get("student_auc_diff_se")),
        "best_epoch": results.get("best_epoch"),
        "epochs_run": results.get("epochs_run"),
        **{key: summary.get(key) for key in ("lambda_mean", "lambda_std", "mu_mean", "mu_std")},
    }
    spectrum_dir = find_spectrum(run_dir)
    per_member, run_spec = _spectral_columns(spectrum_dir, n, manifest)
    first = [m for m in matrices if m.member == (best if best >= 0 else 0)]
    run["layer_kinds"] = "|".join(m.kind for m in first) or None  # the kind and label of layer j = 1, 2, ...
    run["layer_labels"] = "|".join(m.label for m in first) or None
    run.update({f"best_{k}": v for k, v in per_member.get(str(best), {}).items()})
    run.update(run_spec)
    run.update(_trace_columns(run_dir))
    run["git_commit"] = (manifest.get("git") or {}).get("commit")
    run["run_dir"] = str(run_dir)
    rows = []
    for member in members:
        row = {k: run[k] for k in ("run", "variant", *STANDARD_KEYS)}
        row.update({
            "member": member,
            "is_best": member == str(best),
            "test_auc": _metric(test, member, "auc"),
            "test_logloss": _metric(test, member, "logloss"),
            "valid_auc": _metric(valid, member, "auc"),
            "valid_logloss": _metric(valid, member, "logloss"),
        })
        row.update(per_member.get(member, {}))
        row.update({k: v for k, v in run.items() if k not in row})
        rows.append(row)
    return rows, config


def _column_order(df: pd.DataFrame) -> List[str]:
    head = ["run", "variant", *STANDARD_KEYS]
    head += sorted(c for c in df.columns if c.startswith("cfg_"))
    head += ["member", "is_best", "test_auc", "test_logloss", "valid_auc", "valid_logloss"]
    head += layer_columns(df.columns, "")
    rest = [c for c in df.columns if c not in head and c not in ("git_commit", "run_dir")]
    best = layer_columns(rest, "best_")
    tail = [c for c in ("git_commit", "run_dir") if c in df.columns]
    return [c for c in head if c in df.columns] + [c for c in rest if c not in best] + best + tail


def layer_columns(columns: Iterable[str], prefix: str = "best_") -> List[str]:
    """The per-layer spectral columns ``<prefix>{ka,erank_ratio,ia_ratio}_layer<j>`` present, grouped by
    measure and sorted by layer.

    Example:
        >>> layer_columns(["best_ka_layer10", "best_erank_ratio_layer1", "best_ka_layer2", "gap"])
        ['best_ka_layer2', 'best_ka_layer10', 'best_erank_ratio_layer1']
    """
    out: List[str] = []
    for measure in LAYER_MEASURES:
        pattern = re.compile(rf"^{re.escape(prefix)}{measure}_layer(\d+)$")
        found = [(int(m.group(1)), c) for c in columns if (m := pattern.match(str(c)))]
        out += [c for _, c in sorted(found)]
    return out


def collect_results(sweep_dir: Union[str, Path], progress: Optional[bool] = None) -> SweepResults:
    """Read every run of a sweep into a :class:`SweepResults` (see the module docstring for the columns).

    Raises:
        UserError: ``sweep_dir`` is not a directory or holds no finished run.
    """
    from tqdm.auto import tqdm

    sweep_dir = Path(sweep_dir)
    rows: List[Dict[str, Any]] = []
    configs: Dict[str, Dict[str, Any]] = {}
    out = SweepResults(sweep_dir, _sweep_id(sweep_dir), pd.DataFrame(), {})
    recorded: Dict[str, Tuple[Any, Optional[str]]] = {}  # run -> (dataset id, content hash) it was trained on
    for run_dir in tqdm(find_run_dirs(sweep_dir), desc="collect", unit="run", disable=None if progress is None
                        else not progress):
        manifest, reason = _finished_manifest(run_dir)
        if manifest is None:
            out.skipped.append((run_dir.name, reason))
            continue
        try:
            run_rows, config = _run_rows(run_dir.name, run_dir, manifest)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.skipped.append((run_dir.name, f"unreadable results ({type(exc).__name__}: {exc})"))
            continue
        if find_spectrum(run_dir) is None:
            out.notes.append(f"{run_dir.name}: no spectrum.csv (run `collapse-lab spectrum {run_dir}`)")
        rows.extend(run_rows)
        configs[run_dir.name] = config
        out.run_dirs[run_dir.name] = run_dir
        dataset = manifest.get("dataset") if isinstance(manifest.get("dataset"), dict) else {}
        recorded[run_dir.name] = (dataset.get("id") or config.get("dataset"), dataset.get("hash"))
    out.warnings = mixed_hash_warnings(recorded)
    if not rows:
        detail = "; ".join(f"{name}: {why}" for name, why in out.skipped[:5])
        raise UserError(f"{sweep_dir}: no finished runs" + (f" ({detail})" if detail else ""))
    df = pd.DataFrame(rows)
    for key in _varying_keys(configs):
        df[f"cfg_{key}"] = [_hashable(configs[r].get(key)) for r in df["run"]]
    out.results = df[_column_order(df)].sort_values(["dataset", "variant", "n", "seed", "run"], key=_sort_key,
                                                     kind="stable").reset_index(drop=True)
    return out


def read_results_csv(path: Union[str, Path], sweep_id: Optional[str] = None) -> SweepResults:
    """A :class:`SweepResults` from a ``results.csv`` written earlier, when the run directories are gone (e.g.
    the committed tables of a sweep), so that the statistics can be recomputed with the current rules.

    Per-run columns added since the file was written are filled from what it holds: ``student_auc_sd`` from
    the students' ``test_auc`` rows; ``student_auc_diff_se`` needs the test predictions and stays NaN.
    ``sweep_id`` defaults to the name of the file's directory.

    Raises:
        UserError: the file is missing or lacks the columns of a results table.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"member": str})
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read results table ({exc})") from None
    missing = [c for c in ("run", "variant", *STANDARD_KEYS, "member", "test_auc", "ensemble_auc") if c not in df]
    if missing:
        raise UserError(f"{path}: not a results.csv of `collapse-lab results` (no column {', '.join(missing)})")
    at = df.columns.get_loc("gap") + 1 if "gap" in df else len(df.columns)  # where collect_results puts them
    if "student_auc_diff_se" not in df:
        df.insert(at, "student_auc_diff_se", np.nan)
    if "student_auc_sd" not in df:
        students = df[df["member"] != "ensemble"]
        sd = students.groupby("run")["test_auc"].agg(lambda v: _sd(v.to_numpy(float)))
        df.insert(at, "student_auc_sd", df["run"].map(sd).astype(float))
    run_dirs = {} if "run_dir" not in df else {r: Path(d) for r, d in zip(df["run"], df["run_dir"], strict=True)}
    return SweepResults(path.parent, sweep_id or path.parent.resolve().name, df[_column_order(df)], run_dirs,
                        table_only=True)


def load_results(source: Union[str, Path], progress: Optional[bool] = False) -> SweepResults:
    """The results of a sweep directory (:func:`collect_results`), or of a committed ``results.csv`` — the file
    itself or a directory holding one and no run directories, e.g. ``figures/ml100k`` — read with
    :func:`read_results_csv` (``table_only``: figures and tables that need the runs' files are not available).
    The sweep id of a table is the ``sweep_id`` of the ``figures.json`` beside it, else its directory's name.

    Raises:
        UserError: ``source`` does not exist, or is neither a sweep nor a results table.
    """
    path = Path(source)
    if not path.exists():
        raise UserError(f"{path}: no such sweep directory or results.csv")
    if path.is_dir() and not find_run_dirs(path) and (path / "results.csv").is_file():
        path = path / "results.csv"
    if path.is_file():
        return read_results_csv(path, _figures_sweep_id(path.parent))
    return collect_results(path, progress=progress)


def _figures_sweep_id(directory: Path) -> Optional[str]:
    try:
        value = json.loads((directory / "figures.json").read_text(encoding="utf-8")).get("sweep_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _hashable(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _varying_keys(configs: Mapping[str, Mapping[str, Any]]) -> List[str]:
    keys = sorted({k for c in configs.values() for k in c} - set(STANDARD_KEYS) - set(_NEUTRAL_KEYS)
                  - set(_RECIPE_KEYS))
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1]


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "variant":
        order = {v: i for i, v in enumerate(VARIANT_ORDER)}
        return col.map(lambda v: (order.get(v, len(order)), v)).map(lambda t: f"{t[0]:03d}{t[1]}")
    return col
