"""Tidy tables for the figures, built from ``results.csv`` rows and the runs' spectral and metric files.

Every function takes the results table (:attr:`SweepResults.results`, possibly filtered, e.g. to one dataset)
and returns the DataFrame one ``plot_*`` function draws. The *single model* is the vanilla-mean run with
N = 1; as in the paper (every curve of Figs. 2–8 starts from the same 1x point), it is the N = 1 point of every
recipe that has no N = 1 run of its own (rows marked ``single_model``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from collapse_lab.errors import UserError
from collapse_lab.io import contract
from collapse_lab.io.contract import ModelMatrix, find_spectrum
from collapse_lab.results.collect import VARIANT_ORDER, layer_columns
from collapse_lab.results.differences import SINGLE_VARIANT, difference_table, reference_difference_table

__all__ = [
    "SINGLE_VARIANT",
    "read_spectrum",
    "read_singular_values",
    "read_metrics",
    "with_single_model",
    "run_table",
    "student_table",
    "ka_table",
    "heatmap_table",
    "field_ia_table",
    "spectra_table",
    "exam_table",
    "difference_table",
    "reference_difference_table",
    "PAPER_RECIPES",
    "KDEF_ABLATIONS",
    "CAPACITY_CONTROL",
    "CONTROLS",
    "without_controls",
    "controls_table",
    "embedding_table",
    "collapse_map_table",
    "trace_table",
]

EXAM_METRICS = ("lambda", "lambda_mean", "lambda_std", "mu_mean", "mu_std")


def read_spectrum(run_dir: Path) -> Optional[pd.DataFrame]:
    """The run's ``spectrum.csv`` (``member`` as text), or None when the run was not analysed."""
    return contract.read_spectrum_csv(Path(run_dir))


def read_singular_values(run_dir: Path) -> Dict[str, np.ndarray]:
    """``{"<target>:<name>": σ (descending)}`` from the run's ``singular_values.npz`` (empty when absent)."""
    where = find_spectrum(Path(run_dir))
    if where is None or not (where / contract.SINGULAR_VALUES).is_file():
        return {}
    arrays = contract.read_singular_values(where, check_numbers=True)
    return {key: np.asarray(value, dtype=float) for key, value in arrays.items()}


def read_metrics(run_dir: Path) -> Optional[pd.DataFrame]:
    """The run's ``metrics.csv`` (``member`` as text), or None when it is missing."""
    return contract.read_metrics_csv(Path(run_dir))


def _student_matrices(run_dir: Path, member: int) -> List[ModelMatrix]:
    """The matrices of student ``member`` listed by the run's manifest (empty when it cannot be read)."""
    try:
        return [m for m in contract.model_matrices(contract.read_manifest(run_dir)) if m.member == member]
    except UserError:
        return []


def _runs(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["member"].astype(str) == "ensemble"].reset_index(drop=True)


def with_single_model(df: pd.DataFrame, variants: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Add the vanilla-mean N = 1 rows as the N = 1 point of every recipe without an N = 1 run of its own."""
    df = df.assign(single_model=False)
    single = df[(df["variant"] == SINGLE_VARIANT) & (df["n"] == 1)]
    if single.empty:
        return df
    variants = list(variants) if variants is not None else list(dict.fromkeys(df["variant"]))
    extra = [single.assign(variant=v, single_model=True) for v in variants
             if v != SINGLE_VARIANT and not ((df["variant"] == v) & (df["n"] == 1)).any()]
    return pd.concat([df, *extra], ignore_index=True) if extra else df


#: Recipes whose students' own heads get no gradient (the fused logit reads their hidden layers), so their
#: per-student scores are untrained heads, not collapse; the paper draws no concat student curve.
UNTRAINED_STUDENT_HEADS: Tuple[str, ...] = ("vanilla-concat",)
#: Recipes with one student at N > 1 (the capacity control): no spread, no gap, no students to compare.
ONE_STUDENT: Tuple[str, ...] = ("vanilla-mean-capacity",)


#: the paper's recipes (figures 1-3 draw these and the single model)
PAPER_RECIPES: Tuple[str, ...] = ("vanilla-mean", "vanilla-sum", "vanilla-concat", "kd", "dml", "kdef")
#: KDEF with one part removed or replaced (``kdef_terms``, ``exam_weights``, ``exam``; :mod:`collapse_lab.recipes`)
KDEF_ABLATIONS: Tuple[str, ...] = tuple(v for v in VARIANT_ORDER if v.startswith("kdef-"))
#: one student widened to the parameters of K students, compared at N = K
CAPACITY_CONTROL = "vanilla-mean-capacity"
#: the controls of the ``ml100k`` sweep, drawn by figure 16 and left out of figures 1-3
CONTROLS: Tuple[str, ...] = KDEF_ABLATIONS + (CAPACITY_CONTROL,)


def without_controls(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` without KDEF's ablations and the capacity control (:data:`CONTROLS`; figure 16 draws them),
    unless no recipe of the paper (:data:`PAPER_RECIPES`) is in it: then as it is, so a sweep of controls alone
    still draws. Other recipes (student mixes such as ``kdef-kd-only@pnn+final+ecn``) are kept.

    Example:
        >>> df = pd.DataFrame({"variant": ["kdef", "kdef-uniform", "kdef@final+ecn"]})
        >>> without_controls(df)["variant"].tolist(), without_controls(df[1:])["variant"].tolist()
        (['kdef', 'kdef@final+ecn'], ['kdef-uniform', 'kdef@final+ecn'])
    """
    if not results["variant"].isin(PAPER_RECIPES).any():
        return results
    return results[~results["variant"].isin(CONTROLS)]


def run_table(results: pd.DataFrame, single_model: bool = True, exclude: Sequence[str] = (),
              controls: bool = True) -> pd.DataFrame:
    """One row per run (figure 1), with the shared single model at N = 1; recipes in ``exclude`` left out, and
    with ``controls=False`` KDEF's ablations and the capacity control too (:func:`without_controls`)."""
    runs = _runs(results if controls else without_controls(results))
    runs = runs[~runs["variant"].isin(exclude)].reset_index(drop=True)
    return with_single_model(runs) if single_model else runs


def gap_table(results: pd.DataFrame, exclude: Sequence[str] = UNTRAINED_STUDENT_HEADS + ONE_STUDENT,
              single_model: bool = True, controls: bool = True) -> pd.DataFrame:
    """One row per run for the ensemble − best student gap (figure 3), without the recipes whose students
    have untrained heads (their 20-point "gap" is not collapse and would flatten every other curve) and the
    one-student capacity control (its gap is 0 by construction); ``controls=False``: as :func:`run_table`."""
    return run_table(results, single_model=single_model, exclude=exclude, controls=controls)


def student_table(results: pd.DataFrame, exclude: Sequence[str] = UNTRAINED_STUDENT_HEADS + ONE_STUDENT,
                  single_model: bool = True, controls: bool = True) -> pd.DataFrame:
    """One row per student (figures 2 and 4), without the recipes whose students have untrained heads and the
    one-student capacity control; ``controls=False`` (figure 2) leaves out KDEF's ablations too
    (:func:`without_controls`)."""
    students = results if controls else without_controls(results)
    students = students[students["member"].astype(str) != "ensemble"]
    students = students[~students["variant"].isin(exclude)].reset_index(drop=True)
    variants = list(dict.fromkeys(students["variant"]))
    return with_single_model(students, variants) if single_model else students


def ka_table(results: pd.DataFrame, single_model: bool = True, tau: Optional[float] = None,
             threshold: str = "abs") -> pd.DataFrame:
    """``variant, n, seed, run, layer, ka`` for the best student of every run (figure 6).

    With ``tau=None`` and ``threshold="abs"`` KA comes from ``spectrum.csv`` (the ``best_ka_layer*`` columns, τ of
    the analysis, 4 by default); otherwise it is recomputed from ``singular_values.npz`` at that threshold
    (:func:`collapse_lab.spectral.knowledge_abundance`: ``abs`` σ > τ, ``mp`` σ > τ × the Marchenko–Pastur bulk
    edge of an equal-norm Gaussian of the layer's shape, ``rel`` σ > τ·σ_max), e.g. to look below τ = 4 on small
    data.
    """
    runs = run_table(results, single_model)
    if tau is not None or threshold != "abs":
        frames = [pd.DataFrame({"variant": row["variant"], "n": row["n"], "seed": row["seed"], "run": row["run"],
                                "layer": layer, "ka": ka}, index=[0])
                  for _, row in runs.iterrows() for layer, ka in _best_student_ka(row, tau, threshold).items()]
        cols = ["variant", "n", "seed", "run", "layer", "ka"]
        return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    return layer_measure_table(results, "ka", single_model)


def layer_measure_table(results: pd.DataFrame, measure: str = "erank_ratio", single_model: bool = True) -> pd.DataFrame:
    """``variant, n, seed, run, layer, <measure>``: a per-layer measure of the best student's hidden weights
    (the ``best_<measure>_layer<j>`` columns of results.csv: ``ka``, ``erank_ratio``, ``ia_ratio``) for every
    run (figures 6 and 10)."""
    runs = run_table(results, single_model)
    prefix = f"best_{measure}_layer"
    cols = [c for c in layer_columns(runs.columns, "best_") if c.startswith(prefix)]
    if not cols:
        return pd.DataFrame(columns=["variant", "n", "seed", "run", "layer", measure])
    keys = ["variant", "n", "seed", "run"] + (["single_model"] if "single_model" in runs else [])
    long = runs.melt(id_vars=keys, value_vars=cols, var_name="layer", value_name=measure)
    long["layer"] = long["layer"].str.slice(len(prefix)).astype(int)
    long[measure] = pd.to_numeric(long[measure], errors="coerce")
    return long.dropna(subset=[measure]).reset_index(drop=True)


def erank_ratio_table(results: pd.DataFrame, single_model: bool = True) -> pd.DataFrame:
    """:func:`layer_measure_table` of the effective-rank ratio to a same-shape Gaussian (figure 10)."""
    return layer_measure_table(results, "erank_ratio", single_model)


def _best_student_sigmas(row: pd.Series) -> Dict[int, np.ndarray]:
    """``{layer (1-based): σ}`` of the student matrices of the run's best student (the manifest's, in order; the
    MLP names for a run without a readable manifest), up to the first one not analysed."""
    svs = read_singular_values(Path(row["run_dir"]))
    best = max(int(row["best_student"]), 0)
    names = [m.weight for m in _student_matrices(Path(row["run_dir"]), best)]
    out: Dict[int, np.ndarray] = {}
    if not names:
        while f"weights:{contract.hidden_weight(best, len(out))}" in svs:
            out[len(out) + 1] = svs[f"weights:{contract.hidden_weight(best, len(out))}"]
        return out
    for name in names:
        if f"weights:{name}" not in svs:
            break
        out[len(out) + 1] = svs[f"weights:{name}"]
    return out


def _best_student_ka(row: pd.Series, tau: Optional[float], threshold: str = "abs") -> Dict[int, float]:
    """``{layer: KA}`` of the best student at the threshold (σ cut and KA from :func:`_ka_cuts`)."""
    return {layer: ka for layer, (_, ka) in _ka_cuts(row, tau, threshold).items()}


def _ka_cuts(row: pd.Series, tau: Optional[float], threshold: str) -> Dict[int, Tuple[float, float]]:
    """``{layer: (absolute σ threshold, KA)}`` of the best student's hidden weights."""
    from collapse_lab.errors import UserError
    from collapse_lab.spectral import ka_threshold, knowledge_abundance

    best = max(int(row["best_student"]), 0)
    matrices = _student_matrices(Path(row["run_dir"]), best) if threshold == "mp" else []
    shapes = {j + 1: m.matrix_shape for j, m in enumerate(matrices) if len(m.matrix_shape) == 2}
    out = {}
    for layer, sigma in _best_student_sigmas(row).items():
        shape = shapes.get(layer)
        if threshold == "mp" and shape is None:
            raise UserError(f"{Path(row['run_dir']) / 'manifest.json'}: no shape for layer {layer} of student "
                            f"{best}, needed by the 'mp' threshold")
        out[layer] = (ka_threshold(sigma, threshold, tau, shape),
                      knowledge_abundance(sigma, tau, threshold=threshold, shape=shape))
    return out


def _pick(runs: pd.DataFrame, variant: str, n: Optional[int] = None) -> Optional[pd.Series]:
    """The run of ``variant`` at ``n`` (default: its largest N) with the smallest seed."""
    sub = runs[runs["variant"] == variant]
    if sub.empty:
        return None
    n = int(sub["n"].max()) if n is None else n
    sub = sub[sub["n"] == n].sort_values(["seed", "run"])
    return None if sub.empty else sub.iloc[0]


def _panels(runs: pd.DataFrame) -> List[tuple]:
    """(label, run row) for the single model, vanilla-mean at its largest N and KDEF at its largest N."""
    panels = []
    single = _pick(runs, SINGLE_VARIANT, 1)
    if single is not None:
        panels.append(("single model (N=1)", single))
    for variant, label in ((SINGLE_VARIANT, "vanilla-mean"), ("kdef", "KDEF")):
        row = _pick(runs, variant)
        if row is not None and int(row["n"]) > 1:
            panels.append((f"{label} N={int(row['n'])}, best student", row))
    return panels


def heatmap_table(results: pd.DataFrame, tau: Optional[float] = None, threshold: str = "abs") -> pd.DataFrame:
    """``panel, layer, index, sigma, ka, threshold`` for figure 5: the hidden Linear weights of the best student of
    each panel's run, with KA recomputed at the drawn threshold (:func:`collapse_lab.spectral.knowledge_abundance`;
    ``threshold`` column = the absolute σ cut of that layer) so the label always matches the line."""
    frames = []
    for label, row in _panels(_runs(results)):
        cuts = _ka_cuts(row, tau, threshold)
        for layer, sigma in _best_student_sigmas(row).items():
            cut, ka = cuts[layer]
            frames.append(pd.DataFrame({"panel": label, "layer": layer, "index": np.arange(sigma.size),
                                        "sigma": sigma, "ka": ka, "threshold": cut}))
    cols = ["panel", "layer", "index", "sigma", "ka", "threshold"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _largest_n_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The single-model runs (labelled ``single model``) and every run of each recipe at its largest N > 1."""
    is_single = (runs["variant"] == SINGLE_VARIANT) & (runs["n"] == 1)
    rest = runs[~is_single]
    chosen = rest[rest.groupby("variant")["n"].transform("max") == rest["n"]]
    return pd.concat([runs[is_single].assign(variant="single model"), chosen], ignore_index=True)


def field_ia_table(results: pd.DataFrame) -> pd.DataFrame:
    """``variant, run, field, rows, value, baseline`` of per-field embedding IA (figure 7)."""
    frames = []
    for _, row in _largest_n_runs(_runs(results)).iterrows():
        spec = read_spectrum(Path(row["run_dir"]))
        if spec is None:
            continue
        ia = spec[(spec["target"] == "embeddings") & (spec["metric"] == "information_abundance")]
        if ia.empty:
            continue
        frames.append(pd.DataFrame({
            "variant": row["variant"], "run": row["run"], "n": row["n"],
            "field": ia["name"].str.replace(r"^embedding\.tables\.(.*)\.weight$", r"\1", regex=True),
            "rows": ia["rows"].to_numpy(), "value": ia["value"].to_numpy(float),
            "baseline": pd.to_numeric(ia["baseline"], errors="coerce").to_numpy(float)}))
    cols = ["variant", "run", "n", "field", "rows", "value", "baseline"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def _embedding_key(svs: Dict[str, np.ndarray]) -> Optional[str]:
    if "input:input" in svs:
        return "input:input"
    tables = [k for k in svs if k.startswith("embeddings:")]
    return max(tables, key=lambda k: svs[k].size) if tables else None


def _floor(spec: Optional[pd.DataFrame], key: str) -> float:
    """max(resolution floor, storage floor) that ``spectrum.csv`` reports for ``<target>:<name>`` (NaN if none)."""
    if spec is None:
        return float("nan")
    target, _, name = key.partition(":")
    rows = spec[(spec["target"] == target) & (spec["name"] == name)
                & spec["metric"].isin(["resolution_floor", "storage_floor"])]
    values = pd.to_numeric(rows["value"], errors="coerce").dropna()
    return float(values.max()) if len(values) else float("nan")


def spectra_table(results: pd.DataFrame) -> pd.DataFrame:
    """``variant, kind, run, index, sigma_norm, resolved`` = σ_i/σ_1 of the embedding input (``input``, else
    the widest table) and of the best student's last hidden layer activations, for the runs of figure 7
    (figure 8). ``resolved`` is False for σ_i at or below the larger of the backend's resolution floor and the
    storage floor of ``spectrum.csv`` (round-off, not spectrum: e.g. the zero directions of a field with fewer
    rows than the embedding dimension)."""
    frames = []
    for _, row in _largest_n_runs(_runs(results)).iterrows():
        svs = read_singular_values(Path(row["run_dir"]))
        spec = read_spectrum(Path(row["run_dir"]))
        best = max(int(row["best_student"]), 0)
        names = [m.activation for m in _student_matrices(Path(row["run_dir"]), best) if m.activation]
        acts = ([f"activations:{a}" for a in names if f"activations:{a}" in svs] if names else
                sorted((k for k in svs if (contract.parse_activation(k.split(":", 1)[1]) or (-1,))[0] == best),
                       key=lambda k: contract.parse_activation(k.split(":", 1)[1])[1]))
        picks = [("embeddings", _embedding_key(svs)), ("activations (last hidden layer)", acts[-1] if acts else None)]
        for kind, key in picks:
            if key is None or svs[key].size == 0 or svs[key][0] <= 0:
                continue
            sigma = svs[key]
            floor = _floor(spec, key)
            resolved = sigma > floor if not np.isnan(floor) else sigma > 0
            frames.append(pd.DataFrame({"variant": row["variant"], "kind": kind, "run": row["run"],
                                        "index": np.arange(sigma.size), "sigma_norm": sigma / sigma[0],
                                        "resolved": resolved}))
    cols = ["variant", "kind", "run", "index", "sigma_norm", "resolved"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def exam_table(results: pd.DataFrame) -> pd.DataFrame:
    """Training-split λ/μ rows of ``metrics.csv`` for every KDEF run with N > 1 (figure 9; not its ablations)."""
    frames = []
    runs = _runs(results)
    for _, row in runs[(runs["variant"] == "kdef") & (runs["n"] > 1)].iterrows():
        metrics = read_metrics(Path(row["run_dir"]))
        if metrics is None:
            continue
        sub = metrics[(metrics["split"] == "train") & metrics["metric"].isin(EXAM_METRICS)]
        frames.append(sub.assign(run=row["run"], n=int(row["n"]), seed=row["seed"]))
    cols = ["run", "n", "seed", "epoch", "member", "metric", "value"]
    out = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    return out.dropna(subset=["value"]).reset_index(drop=True)


def controls_table(results: pd.DataFrame, single_model: bool = True) -> pd.DataFrame:
    """One row per run of KDEF, its ablations, vanilla-mean and the capacity control (:data:`CONTROLS`), with the
    shared single model at N = 1 (figure 16); empty when ``results`` has no KDEF or no control."""
    present = set(results["variant"])
    if "kdef" not in present or not present & set(CONTROLS):
        return run_table(results.iloc[:0], single_model)
    keep = {"kdef", SINGLE_VARIANT, *CONTROLS}
    return run_table(results[results["variant"].isin(keep)], single_model)


#: per-run embedding measures of claim C9 and the hidden-layer measure each corresponds to
EMBEDDING_RATIOS = {"ia_ratio": "emb_ia_ratio_mean", "erank_ratio": "emb_erank_ratio_mean"}


def embedding_table(results: pd.DataFrame, single_model: bool = True) -> pd.DataFrame:
    """``variant, n, seed, run, measure, value`` of the shared embedding's ratios to same-shape Gaussian tables
    (``emb_ia_ratio_mean``, ``emb_erank_ratio_mean``; claim C9), one row per run and measure present."""
    runs = run_table(results, single_model)
    cols = [c for c in EMBEDDING_RATIOS.values() if c in runs and pd.to_numeric(runs[c], errors="coerce").notna().any()]
    keep = ["variant", "n", "seed", "run"] + (["single_model"] if "single_model" in runs else [])
    if not cols:
        return pd.DataFrame(columns=[*keep, "measure", "value"])
    long = runs.melt(id_vars=keep, value_vars=cols, var_name="measure", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def collapse_map_table(results: pd.DataFrame, measure: str = "erank_ratio") -> pd.DataFrame:
    """``variant, layer, n, value, runs``: the mean over seeds of a per-layer measure of the best student's hidden
    weights (``best_<measure>_layer<j>``) per recipe, layer and N — with the single model as every recipe's N = 1
    column — and, as layer ``0`` (the input side), the shared embedding's ratio when results.csv has it
    (``emb_<measure>_mean``)."""
    layers = layer_measure_table(results, measure, single_model=True)
    frames = [layers.rename(columns={measure: "value"})[["variant", "n", "seed", "layer", "value"]]]
    emb = EMBEDDING_RATIOS.get(measure)
    if emb is not None:
        table = embedding_table(results)
        frames.append(table[table["measure"] == emb].assign(layer=0)[["variant", "n", "seed", "layer", "value"]])
    long = pd.concat(frames, ignore_index=True)
    cols = ["variant", "layer", "n", "value", "runs"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    out = long.groupby(["variant", "layer", "n"], sort=False)["value"].agg(["mean", "count"]).reset_index()
    return out.rename(columns={"mean": "value", "count": "runs"})[cols]


#: the matrices a trace figure follows: the best student's hidden layers (1-based) and the shared embedding
TRACE_EMBEDDING = "embedding"


def trace_table(results: pd.DataFrame, metric: str = "effective_rank", value: str = "ratio") -> pd.DataFrame:
    """``variant, n, seed, run, step, epoch, matrix, value`` from each run's ``spectra_trace.csv``
    (:mod:`collapse_lab.training.spectra`) for the runs of every recipe at its largest N and the single model.

    ``matrix`` is ``layer <j>`` for the hidden Linear weights of the run's best student (by final test AUC, the
    student of figures 5, 6 and 10) and ``embedding`` for the mean over the shared embedding tables; ``value`` is
    the trace column read (``ratio`` = the metric over that of same-shape Gaussian matrices, scale-free; or
    ``value``). Runs without a trace are left out.
    """
    from collapse_lab.errors import UserError
    from collapse_lab.io.contract import read_trace

    if value not in ("ratio", "value"):
        raise UserError(f"trace value must be 'ratio' or 'value', got {value!r}")
    frames = []
    for _, row in _largest_n_runs(_runs(results)).iterrows():
        if "run_dir" not in row or not (Path(str(row["run_dir"])) / contract.SPECTRA_TRACE).is_file():
            continue
        trace = read_trace(row["run_dir"])
        trace = trace[trace["metric"] == metric]
        best = str(max(int(row["best_student"]), 0))
        weights = trace[(trace["target"] == "weights") & (trace["member"].astype(str) == best)]
        layer_of = {m.weight: m.layer for m in _student_matrices(Path(row["run_dir"]), int(best))}
        layer = pd.Series([layer_of.get(n, (contract.parse_hidden_weight(n) or (0, -1))[1]) for n in weights["name"]],
                          index=weights.index, dtype=int)
        weights = weights[layer >= 0].assign(matrix="layer " + (layer[layer >= 0].astype(int) + 1).astype(str))
        emb = trace[trace["target"] == "embeddings"].groupby(["step", "epoch"], as_index=False)[value].mean()
        both = pd.concat([weights[["step", "epoch", "matrix", value]], emb.assign(matrix=TRACE_EMBEDDING)],
                         ignore_index=True)
        frames.append(both.rename(columns={value: "value"}).assign(variant=row["variant"], n=int(row["n"]),
                                                                   seed=row["seed"], run=row["run"]))
    cols = ["variant", "n", "seed", "run", "step", "epoch", "matrix", "value"]
    out = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return out.dropna(subset=["value"]).reset_index(drop=True)
