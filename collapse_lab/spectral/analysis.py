"""``analyze(path)``: every matrix of a run / checkpoint → spectra → one tidy DataFrame (+ files).

One row per (matrix, metric), columns :data:`COLUMNS`::

    source, member, target, name, rows, cols, convention, metric, value, baseline, ratio, kind, label

``convention`` spells out how the spectrum was taken (``power`` 1 = σ-family, 2 = σ²-family; ``center``;
``rows`` = uniform | frequency (rows scaled by √count) | trained (rows with count > 0); ``method`` = gram64 |
tsqr; metric-specific ε, τ or tolerance). ``baseline`` is the same-shape Gaussian expectation
(:mod:`collapse_lab.spectral.baselines`) and ``ratio = value / baseline``. Bookkeeping rows
(``attainable_rank``, ``resolution_floor``, ``storage_floor``, ``nonfinite_rows``, ``excluded_rows``) have
no baseline.

Files (``write_outputs``, each written atomically): ``spectrum.csv`` and ``singular_values.npz`` (one float64
array of descending σ per matrix, key ``"<target>:<name>"``; read back with :func:`load_singular_values`).
"""

from __future__ import annotations

import functools
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from collapse_lab.errors import UserError
from collapse_lab.io.atomic import atomic_path, atomic_write_bytes
from collapse_lab.io.contract import SINGULAR_VALUES, SPECTRUM_CSV, SPECTRUM_DIR
from collapse_lab.spectral import functional as F
from collapse_lab.spectral.accumulator import Spectrum
from collapse_lab.spectral.baselines import DEFAULT_DRAWS, DEFAULT_SEED, gaussian_baseline
from collapse_lab.spectral.sources import load_counts
from collapse_lab.spectral.streaming import below_gram_resolution, matrix_spectrum
from collapse_lab.spectral.targets import TARGETS, MatrixSpec, discover

__all__ = ["COLUMNS", "WEIGHTINGS", "SpectralReport", "analyze", "compute_spectra", "write_outputs",
           "load_singular_values", "default_out_dir", "spectrum_report", "json_records", "RANKME_EPS", "KA_METRICS",
           "ka_taus", "metric_rows"]

#: ``kind`` / ``label`` (appended after the original columns): the matrix kind (linear | cross | attention |
#: embedding; empty when unknown) and its label in the student (``mlp.0``) or the table's field, from the manifest
#: (:func:`collapse_lab.io.contract.model_matrices`)
COLUMNS = ["source", "member", "target", "name", "rows", "cols", "convention", "metric", "value", "baseline", "ratio",
           "kind", "label"]
WEIGHTINGS = ("uniform", "frequency", "trained")
RANKME_EPS = 1e-7
ALPHA_MIN_RANK = F.ALPHA_MIN_EIGENVALUES  # α-ReQ rows only for spectra with this many σ (NaN + note if fewer
# of them lie above the numerical floor)
BOOKKEEPING = ("attainable_rank", "resolution_floor", "storage_floor", "nonfinite_rows", "excluded_rows")


@dataclass
class SpectralReport:
    """The tidy table, the singular values by ``"<target>:<name>"`` and notes for the summary."""

    frame: Any  # pandas.DataFrame with COLUMNS
    spectra: Dict[str, np.ndarray]
    notes: List[str] = field(default_factory=list)
    path: str = ""
    kind: str = ""


def _floor(sp: Spectrum) -> float:
    """σ at or below the larger of the backend's resolution floor and the storage-precision floor are noise."""
    return max(sp.resolution_floor, sp.storage_floor if np.isfinite(sp.storage_floor) else 0.0)


#: the metric name of each knowledge-abundance threshold kind (functional.KA_THRESHOLDS)
KA_METRICS = {"abs": "knowledge_abundance", "mp": "knowledge_abundance_mp", "rel": "knowledge_abundance_rel"}


def ka_taus(threshold: str = "abs", tau: float | None = None) -> Dict[str, float]:
    """τ of every KA kind: ``tau`` for ``threshold`` (None = its default), the defaults for the others.

    Example:
        >>> ka_taus("mp", 1.5)
        {'abs': 4.0, 'mp': 1.5, 'rel': 0.1}
    """
    if threshold not in F.KA_THRESHOLDS:
        raise UserError(f"unknown KA threshold {threshold!r}; valid: {', '.join(F.KA_THRESHOLDS)}")
    if tau is not None:
        tau = F.check_tau(tau)
    return {kind: float(tau) if kind == threshold and tau is not None else F.DEFAULT_KA_TAU[kind]
            for kind in F.KA_THRESHOLDS}


def _metric_functions(target: str, sp: Spectrum, taus: Mapping[str, float]
                      ) -> Dict[str, Tuple[Callable[[np.ndarray], float], str]]:
    """name → (function of σ, metric-specific convention) for one matrix."""
    shape = (sp.rows, sp.cols)
    floor = _floor(sp)
    fns: Dict[str, Tuple[Callable[[np.ndarray], float], str]] = {}
    if target == "weights":
        for kind, metric in KA_METRICS.items():
            fns[metric] = (functools.partial(F.knowledge_abundance, tau=taus[kind], zero_tol=floor, threshold=kind,
                                             shape=shape), f"threshold={kind};tau={taus[kind]:g};positive=sv>floor")
    fns.update({
        "information_abundance": (F.information_abundance, "power=1"),
        "effective_rank": (F.effective_rank, "power=1"),
        "covariance_effective_rank": (F.covariance_effective_rank, "power=2"),
        "rankme": (functools.partial(F.rankme, eps=RANKME_EPS), f"power=1;eps={RANKME_EPS:g}"),
        "nuclear_ratio": (F.nuclear_ratio, "power=1"),
        "participation_ratio": (F.participation_ratio, "power=2"),
        "stable_rank": (F.stable_rank, "power=2"),
        "numerical_rank": (functools.partial(F.numerical_rank, shape=shape, atol=floor),
                           "tol=max(floor|numpy)"),
    })
    if sp.sigma.size >= ALPHA_MIN_RANK:
        fns["alpha_req"] = (functools.partial(F.alpha_req, shape=shape, atol=floor),
                            "power=2;ranks=11-100;weighted=1/i;sv>tol")
    fns["sv_max"] = (lambda s: float(s[0]) if s.size else 0.0, "")
    fns["sv_min"] = (lambda s: float(s[-1]) if s.size else 0.0, "")
    return fns


def metric_rows(target: str, sp: Spectrum, weighting: str = "uniform", taus: Mapping[str, float] | None = None,
                draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED, bookkeeping: bool = True) -> List[Dict]:
    """``convention, metric, value, baseline, ratio`` rows of one spectrum (the metric part of :data:`COLUMNS`).

    Args:
        target: ``weights`` (adds the three knowledge abundances), ``embeddings``, ``activations`` or ``input``.
        sp: the spectrum (:func:`~collapse_lab.spectral.streaming.matrix_spectrum`).
        weighting: how embedding rows were weighted (recorded in ``convention``).
        taus: τ per KA kind (:func:`ka_taus`; default: 4, 1, 0.1).
        draws, seed: the same-shape Gaussian baseline's Monte-Carlo size and seed.
        bookkeeping: also the rows of :data:`BOOKKEEPING` (no baseline).
    """
    base = f"center={'yes' if sp.centered else 'no'};rows={weighting};method={sp.method}"
    fns = _metric_functions(target, sp, ka_taus() if taus is None else taus)
    values = {name: fn(sp.sigma) for name, (fn, _) in fns.items()}
    top = float(sp.sigma[0]) if sp.sigma.size else 0.0
    frobenius = top * float(np.linalg.norm(sp.sigma / top)) if top > 0 else 0.0  # ‖A‖_F without overflow
    baseline = gaussian_baseline({n: f for n, (f, _) in fns.items()}, sp.rows, sp.cols, sp.centered,
                                 draws=draws, seed=seed, frobenius=frobenius)
    out = []
    for name, (_, extra) in fns.items():
        value, ref = float(values[name]), baseline[name]
        ratio = value / ref if ref and np.isfinite(ref) else float("nan")
        out.append({"convention": f"{base};{extra}" if extra else base, "metric": name, "value": value,
                    "baseline": ref, "ratio": ratio})
    if bookkeeping:
        book = {"attainable_rank": sp.attainable_rank, "resolution_floor": sp.resolution_floor,
                "storage_floor": sp.storage_floor, "nonfinite_rows": sp.nonfinite_rows,
                "excluded_rows": sp.excluded_rows}
        for name, value in book.items():
            out.append({"convention": base, "metric": name, "value": float(value), "baseline": float("nan"),
                        "ratio": float("nan")})
    return out


def _rows(spec: MatrixSpec, sp: Spectrum, weighting: str, taus: Mapping[str, float], draws: int,
          seed: int) -> List[Dict]:
    common = {"source": spec.source, "member": spec.member, "target": spec.target, "name": spec.name,
              "rows": sp.rows, "cols": sp.cols, "kind": spec.kind, "label": spec.label}
    return [{**common, **row} for row in metric_rows(spec.target, sp, weighting, taus, draws, seed)]


def _row_weights(spec: MatrixSpec, weighting: str, counts_dir: Path | None) -> np.ndarray | None:
    if weighting == "uniform" or spec.target != "embeddings":
        return None
    if spec.field is None:
        raise UserError(f"{spec.name}: weighting {weighting!r} needs the field's training-split counts; this table "
                        "has no field name (use weighting='uniform' for foreign or field_dims-sliced tables)")
    counts = load_counts(counts_dir, spec.field, spec.matrix.shape[0])
    if weighting == "frequency":
        return np.sqrt(np.clip(counts, 0, None).astype(np.float64))  # diag(√f)·E: the looked-up batch spectrum
    return (counts > 0).astype(np.float64)


def compute_spectra(path: Any, targets: Any = None, tau: float | None = None, center: bool = True,
                    exact: bool = False, weighting: str = "uniform", field_dims: Sequence[int] | None = None,
                    checkpoint: str = "best", progress: bool | None = None, chunk_rows: int | None = None,
                    auto_exact: bool = True, baseline_draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED,
                    threshold: str = "abs") -> SpectralReport:
    """Discover the matrices at ``path``, compute their spectra and metrics; see :func:`analyze`."""
    import pandas as pd
    from tqdm.auto import tqdm

    if weighting not in WEIGHTINGS:
        raise UserError(f"unknown weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    taus = ka_taus(threshold, tau)
    found = discover(path, targets, field_dims, checkpoint)
    order = {t: i for i, t in enumerate(TARGETS)}
    specs = sorted(found.specs, key=lambda s: order[s.target])
    rows: List[Dict] = []
    spectra: Dict[str, np.ndarray] = {}
    notes = list(found.notes)
    bar = tqdm(specs, desc="spectrum", unit="matrix", disable=None if progress is not False else True)
    for spec in bar:
        centered = center and spec.target in ("activations", "input")  # weights and tables are analysed raw
        try:
            weights = _row_weights(spec, weighting, found.counts_dir)
            sp = matrix_spectrum(spec.matrix, center=centered, exact=exact, auto_exact=auto_exact, weights=weights,
                                 chunk_rows=chunk_rows, progress=progress, desc=spec.name)
        except UserError as exc:  # matrix-level messages do not know the file
            raise UserError(f"{found.root / spec.source}: tensor {spec.name!r}: {exc}") from None
        spectra[f"{spec.target}:{spec.name}"] = sp.sigma
        rows += _rows(spec, sp, weighting if spec.target == "embeddings" else "uniform", taus, baseline_draws, seed)
        if sp.sigma.size >= ALPHA_MIN_RANK:
            why = F.alpha_req_reason(sp.sigma, shape=(sp.rows, sp.cols), atol=_floor(sp))
            if why:
                notes.append(f"{spec.name}: alpha_req is NaN: {why}")
        if sp.nonfinite_rows:
            notes.append(f"{spec.name}: {sp.nonfinite_rows} row(s) with NaN/Inf excluded")
        if below_gram_resolution(sp):
            notes.append(f"{spec.name}: sv_min/sv_max = {sp.sigma[-1] / sp.sigma[0]:.1e} is below the float64 "
                         "Gram's resolution; rerun with --exact for an exact spectrum tail")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    label = str(path) if isinstance(path, (str, os.PathLike)) else found.kind  # no repr of a whole state dict
    return SpectralReport(frame, spectra, notes, label, found.kind)


def write_outputs(report: SpectralReport, out_dir: Any) -> List[Path]:
    """Write ``spectrum.csv`` and ``singular_values.npz`` into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    csv_path, npz_path = out / SPECTRUM_CSV, out / SINGULAR_VALUES
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, dtype=np.float64) for k, v in report.spectra.items()})
    try:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(csv_path) as tmp:
            report.frame.to_csv(tmp, index=False, float_format="%.10g")
        atomic_write_bytes(npz_path, buf.getvalue())
    except OSError as exc:
        raise UserError(f"{out}: cannot write the spectrum files: {exc.strerror or exc}") from None
    return [csv_path, npz_path]


def load_singular_values(out_dir: Any) -> Dict[str, np.ndarray]:
    """The singular values written by :func:`analyze`: ``{"<target>:<name>": σ (descending, float64)}``."""
    from collapse_lab.io.contract import read_singular_values

    return read_singular_values(out_dir)


def default_out_dir(path: Any) -> Path:
    """``<dir>/spectrum`` for a run or checkpoint directory, ``<parent>/<stem>_spectrum`` next to a file."""
    p = Path(path)
    return p / SPECTRUM_DIR if p.is_dir() else p.parent / f"{p.stem}_spectrum"


def analyze(path: Any, targets: Any = None, tau: float | None = None, center: bool = True, exact: bool = False,
            weighting: str = "uniform", field_dims: Sequence[int] | None = None, checkpoint: str = "best",
            out_dir: Any = None, progress: bool | None = None, chunk_rows: int | None = None,
            auto_exact: bool = True, baseline_draws: int = DEFAULT_DRAWS, seed: int = DEFAULT_SEED,
            threshold: str = "abs") -> Any:
    """Spectral collapse metrics of every matrix in a run directory, checkpoint directory or tensor file.

    Args:
        path: run directory (``manifest.json``), checkpoint directory, ``.safetensors``, ``.pt/.pth/.bin/.model``
            (loaded with ``weights_only=True``) or ``.npy`` matrix; or, with no file round trip, an
            ``nn.Module`` or a state dict (``module.state_dict()``, tensors or numpy arrays, nested wrappers
            allowed), classified by tensor name and shape like a foreign checkpoint (source ``module`` or
            ``state_dict``). Only torch is imported for it, not the models or training code.
        targets: subset of ``weights, embeddings, activations, input`` (comma string or sequence); None = all
            present. Requesting a target that is absent is an error.
        tau: the knowledge-abundance threshold parameter of the ``threshold`` kind (None = its default: 4 for
            ``abs``, 1 × the bulk edge for ``mp``, 0.1·σ_max for ``rel``).
        center: center activations and the embedding input (weights and embedding tables are never centered).
        exact: TSQR for every matrix instead of the float64 Gram.
        weighting: embedding rows ``uniform`` | ``frequency`` (scaled by √count) | ``trained`` (count > 0);
            counts come from the run's ``<dataset>/counts/<field>.npy``.
        field_dims: rows per field of single concatenated tables (foreign checkpoints), to slice per field.
        checkpoint: manifest checkpoint of a run directory (``best``).
        out_dir: when given, also write ``spectrum.csv`` and ``singular_values.npz`` there.
        progress: tqdm bars (None = only on a terminal and, per chunk, for inputs of ≥ 1M rows).
        chunk_rows: rows per streamed chunk (default ≈ 8 MiB of float64).
        auto_exact: redo a Gram spectrum with TSQR when σ_min/σ_1 < 1e-6.
        baseline_draws, seed: Monte-Carlo size and seed of the Gaussian baselines.
        threshold: which KA kind ``tau`` sets (``abs`` | ``mp`` | ``rel``). Every weight gets all three rows,
            ``knowledge_abundance`` (σ > τ, KDEF), ``knowledge_abundance_mp`` (σ above τ × the Marchenko–Pastur
            bulk edge of a same-shape Gaussian of equal Frobenius norm) and ``knowledge_abundance_rel``
            (σ > τ·σ_max), each with ``threshold=<kind>;tau=<τ>`` in ``convention``.

    Returns:
        The tidy pandas DataFrame (:data:`COLUMNS`); ``df.attrs["notes"]`` holds notes (dropped rows, tensors
        not analysed).
    """
    report = compute_spectra(path, targets, tau, center, exact, weighting, field_dims, checkpoint, progress,
                             chunk_rows, auto_exact, baseline_draws, seed, threshold)
    if out_dir is not None:
        write_outputs(report, out_dir)
    report.frame.attrs["notes"] = report.notes
    report.frame.attrs["kind"] = report.kind
    report.frame.attrs["ka_threshold"] = {"threshold": threshold, "tau": ka_taus(threshold, tau)[threshold]}
    return report.frame


def json_records(df: Any) -> List[Dict[str, Any]]:
    """The rows of ``df`` as JSON-ready dicts, floats at full precision (``json`` writes ``repr``, which reads
    back to the same float64; ``DataFrame.to_json`` rounds to 10 decimals, so a 1.1e-13 floor became 0.0).
    NaN and ±inf become null, as in ``to_json``; numpy scalars become Python numbers."""
    def plain(v: Any) -> Any:
        if isinstance(v, (float, np.floating)):
            return float(v) if np.isfinite(v) else None
        return v.item() if isinstance(v, np.generic) else v

    return [{k: plain(v) for k, v in rec.items()} for rec in df.to_dict(orient="records")]


def spectrum_report(path: Any, out_dir: Any = None, as_json: bool = False, **options: Any) -> str:
    """Run :func:`analyze` for the CLI, write the files (default :func:`default_out_dir`) and return the text
    to print: a readable summary, or a JSON object with the output paths, notes and every row."""
    from collapse_lab.spectral.summary import summarize

    out = Path(out_dir) if out_dir is not None else default_out_dir(path)
    df = analyze(path, out_dir=out, **options)
    if as_json:
        payload = {"path": str(path), "out_dir": str(out), "files": ["spectrum.csv", "singular_values.npz"],
                   "ka_threshold": df.attrs["ka_threshold"],
                   "notes": df.attrs.get("notes", []), "rows": json_records(df)}
        return json.dumps(payload, indent=1, allow_nan=False)
    return summarize(df, header=f"spectrum of {path} -> {out}/{{spectrum.csv,singular_values.npz}}",
                     threshold=df.attrs["ka_threshold"]["threshold"])
