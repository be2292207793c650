"""The run-directory contract between training and analysis, in one place (docs/architecture.md §4 and §6).

Everything a reader of a run directory needs, and nothing that trains:

* **layout** — the file names of a run directory (``MANIFEST``, ``METRICS``, ``PROBE``, ...; §6.1);
* **manifest** — ``MANIFEST_KIND``, ``MANIFEST_SCHEMA_VERSION``, ``STATUSES`` and the one reader
  :func:`read_manifest` (§6.2); :func:`run_status` and :func:`run_dataset_hash` for the sweep's bookkeeping;
* **tensor names** — :func:`student_tensor` / :func:`parse_student_tensor` for ``students.<k>.<...>``,
  :func:`embedding_table` / :func:`parse_embedding_table` for ``embedding.tables.<f>.weight`` and the hidden
  layer names built on them (§4, "Canonical tensor names");
* **matrices** — :func:`model_matrices`: the analysable matrices a manifest lists (member, layer, weight, shape,
  kind, label, activation), with defaults for manifests written before ``kind``/``label`` existed;
* **summary** — :func:`student_summary`: best/worst student, spread = best − worst student AUC and
  gap = ensemble − best student AUC (docs/method.md §1, limitations 2 and 3);
* **readers** — :func:`read_metrics_csv`, :func:`read_spectrum_csv`, :func:`read_singular_values`.

Torch-free; pandas is imported by the CSV readers only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from collapse_lab.errors import UserError

__all__ = [
    "MANIFEST", "CONFIG", "METRICS", "LOG", "PROBE", "SPECTRA_TRACE", "CHECKPOINTS", "WEIGHTS_FILE",
    "TRAINER_STATE", "METRICS_COLUMNS", "SPECTRUM_DIR", "SPECTRUM_CSV", "SINGULAR_VALUES", "SPECTRUM_LOCATIONS",
    "MANIFEST_KIND", "MANIFEST_SCHEMA_VERSION", "STATUSES", "read_manifest", "run_status", "run_dataset_hash",
    "read_rows",
    "student_tensor", "parse_student_tensor", "embedding_table", "parse_embedding_table", "hidden_weight",
    "parse_hidden_weight", "activation_name", "parse_activation", "MATRIX_KINDS", "ModelMatrix", "model_matrices",
    "student_summary", "find_spectrum", "read_metrics_csv", "read_spectrum_csv", "read_singular_values",
    "TRACE_COLUMNS", "read_trace", "matrix_shape",
]

# ---------------------------------------------------------------------------------------------------- layout (§6.1)
MANIFEST = "manifest.json"
CONFIG = "config.yaml"
METRICS = "metrics.csv"
LOG = "train.log"
PROBE = "probe.safetensors"
SPECTRA_TRACE = "spectra_trace.csv"
CHECKPOINTS = "checkpoints"
WEIGHTS_FILE = "model.safetensors"
TRAINER_STATE = "trainer_state.pt"
SPECTRUM_DIR = "spectrum"
SPECTRUM_CSV = "spectrum.csv"
SINGULAR_VALUES = "singular_values.npz"
#: where a run's spectral outputs may live, relative to the run directory
SPECTRUM_LOCATIONS = (SPECTRUM_CSV, f"{SPECTRUM_DIR}/{SPECTRUM_CSV}")
#: the columns of ``spectra_trace.csv`` (§6.7)
TRACE_COLUMNS = ("step", "epoch", "member", "target", "name", "rows", "cols", "metric", "value", "baseline", "ratio")
#: the columns of ``metrics.csv`` (§6.3), one row per value
METRICS_COLUMNS = ("epoch", "step", "split", "member", "metric", "value")

# -------------------------------------------------------------------------------------------------- manifest (§6.2)
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_KIND = "collapse-lab-run"
STATUSES = ("running", "complete", "failed")


def read_manifest(path: Union[str, Path], check_schema: bool = True) -> Dict[str, Any]:
    """Load a run's ``manifest.json`` (a run directory or the file) and check its ``kind`` and, unless
    ``check_schema`` is false, its ``schema_version``.

    Raises:
        UserError: one line naming the file — missing, not a regular file, not UTF-8, invalid JSON, not a
            collapse-lab run manifest, or an unsupported schema version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{path}: manifest not found (not a collapse-lab run directory?)")
    from collapse_lab.io.inputs import read_text_file

    try:
        data = json.loads(read_text_file(path, "JSON run manifest"))
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply; expected a run manifest") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind != MANIFEST_KIND:
        raise UserError(f"{path}: not a collapse-lab run manifest (kind {kind!r}, expected {MANIFEST_KIND!r})")
    if check_schema and data.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise UserError(f"{path}: manifest schema_version {data.get('schema_version')!r} is not supported "
                        f"(expected {MANIFEST_SCHEMA_VERSION})")
    return data


def run_status(run_dir: Union[str, Path]) -> str:
    """``missing`` (no directory), ``corrupt`` (no readable run manifest), or the manifest's ``status``."""
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).exists():
        return "missing" if not run_dir.exists() else "corrupt"
    try:
        return str(read_manifest(run_dir, check_schema=False).get("status", "corrupt"))
    except UserError:
        return "corrupt"


def run_dataset_hash(run_dir: Union[str, Path]) -> Optional[str]:
    """The content hash of the processed dataset a run was trained on, as its manifest records it
    (``dataset.hash``, the ``content_hash`` of the dataset's ``meta.json``); None when the manifest is missing or
    unreadable or records none (a dataset directory without ``meta.json``).

    The sweep compares it with the hash of the dataset prepared now to find runs trained on an older preparation
    (``stale``): names and config hashes depend on the config only, so they cannot tell. Reading the recorded
    hash costs one small JSON file, never a pass over the data.
    """
    try:
        dataset = read_manifest(run_dir, check_schema=False).get("dataset")
    except UserError:
        return None
    digest = dataset.get("hash") if isinstance(dataset, dict) else None
    return digest if isinstance(digest, str) and digest else None


# --------------------------------------------------------------------------------------------- tensor names (§4)
_STUDENT = re.compile(r"^students\.(\d+)\.(.+)$")
_TABLE = re.compile(r"^embedding\.tables\.(.+)\.weight$")
_HIDDEN = re.compile(r"^students\.(\d+)\.layers\.(\d+)\.linear\.weight$")
_ACTIVATION = re.compile(r"^students\.(\d+)\.layers\.(\d+)$")


def student_tensor(member: Union[int, str], *parts: Union[int, str]) -> str:
    """``students.<member>.<part>.<part>...``.

    Example:
        >>> student_tensor(2, "layers", 0, "linear.weight")
        'students.2.layers.0.linear.weight'
    """
    return ".".join(["students", str(int(member)), *map(str, parts)])


def parse_student_tensor(name: str) -> Optional[Tuple[int, str]]:
    """``(member, rest)`` of ``students.<member>.<rest>``, None for any other name.

    Example:
        >>> parse_student_tensor("students.3.head.weight"), parse_student_tensor("fusion.head.weight")
        ((3, 'head.weight'), None)
    """
    m = _STUDENT.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def embedding_table(field: str) -> str:
    """``embedding.tables.<field>.weight``, the shared table of one field."""
    return f"embedding.tables.{field}.weight"


def parse_embedding_table(name: str) -> Optional[str]:
    """The field of ``embedding.tables.<field>.weight``, None for any other name.

    Example:
        >>> parse_embedding_table("embedding.tables.movie_id.weight")
        'movie_id'
    """
    m = _TABLE.match(name)
    return m.group(1) if m else None


def hidden_weight(member: int, layer: int) -> str:
    """The MLP student's hidden Linear weight ``students.<k>.layers.<j>.linear.weight``."""
    return student_tensor(member, "layers", layer, "linear.weight")


def parse_hidden_weight(name: str) -> Optional[Tuple[int, int]]:
    """``(member, layer)`` of an MLP hidden Linear weight name, None otherwise."""
    m = _HIDDEN.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def activation_name(member: int, layer: int) -> str:
    """The probe's activation key ``students.<k>.layers.<j>`` of an MLP hidden layer."""
    return student_tensor(member, "layers", layer)


def parse_activation(name: str) -> Optional[Tuple[int, int]]:
    """``(member, layer)`` of an MLP probe activation name, None otherwise."""
    m = _ACTIVATION.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


# -------------------------------------------------------------------------------------------------------- matrices
MATRIX_KINDS = ("linear", "cross", "attention", "embedding")


@dataclass(frozen=True)
class ModelMatrix:
    """One analysable student matrix listed by ``manifest["model"]["hidden_layers"]``.

    ``shape`` is the stored shape; :attr:`matrix_shape` the 2-D (out, in) matrix analysed (a conv1d/CIN weight
    (out, in, 1) drops its trailing 1).
    """

    member: int
    layer: int
    weight: str
    shape: Tuple[int, ...]
    kind: str
    label: str
    activation: Optional[str]

    @property
    def matrix_shape(self) -> Tuple[int, ...]:
        return matrix_shape(self.shape)


def matrix_shape(shape: Sequence[int]) -> Tuple[int, ...]:
    """The 2-D shape a stored weight is analysed as: ``(out, in, 1)`` → ``(out, in)``; others unchanged.

    Example:
        >>> matrix_shape([8, 4, 1]), matrix_shape([8, 4])
        ((8, 4), (8, 4))
    """
    shape = tuple(int(s) for s in shape)
    return shape[:2] if len(shape) == 3 and shape[2] == 1 else shape


def _manifest_error(where: str, what: str) -> UserError:
    return UserError(f"{where}: model.hidden_layers {what}")


def model_matrices(manifest: Mapping[str, Any], where: str = MANIFEST) -> List[ModelMatrix]:
    """The student matrices a run's manifest lists, in manifest order.

    Entries of ``model.hidden_layers``: ``{"member": k, "layer": j, "weight": "students.<k>.<param>", "shape":
    [...], "kind": "linear|cross|attention|embedding", "label": "mlp.0", "name": "students.<k>.<key>" | null}``.
    Manifests written before ``kind``/``label`` existed read as ``kind = "linear"``, ``label = "mlp.<j>"``; a
    missing ``layer`` is the entry's position among its member's entries.

    Example:
        >>> m = {"model": {"hidden_layers": [{"member": 0, "layer": 1, "name": "students.0.layers.1",
        ...      "weight": "students.0.layers.1.linear.weight", "shape": [4, 8]}]}}
        >>> e = model_matrices(m)[0]
        >>> e.member, e.layer, e.kind, e.label, e.activation, e.shape
        (0, 1, 'linear', 'mlp.1', 'students.0.layers.1', (4, 8))

    Raises:
        UserError: ``model.hidden_layers`` missing or an entry without a member and weight name (``where`` names
            the file in the message).
    """
    model = manifest.get("model") if isinstance(manifest, Mapping) else None
    items = model.get("hidden_layers") if isinstance(model, Mapping) else None
    if not isinstance(items, list):
        raise UserError(f"{where}: missing key 'model.hidden_layers'")
    out: List[ModelMatrix] = []
    seen: Dict[int, int] = {}
    for item in items:
        if not isinstance(item, Mapping) or not _is_index(item.get("member")) or not isinstance(item.get("weight"),
                                                                                               str):
            raise _manifest_error(where, "must be a list of objects with keys member, weight, name (names)")
        member = int(item["member"])
        layer = item.get("layer", seen.get(member, 0))
        if not _is_index(layer):
            raise _manifest_error(where, f"entry {item['weight']!r}: layer must be an integer, got {layer!r}")
        seen[member] = int(layer) + 1
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise _manifest_error(where, f"entry {item['weight']!r}: name must be a tensor name or null")
        kind = item.get("kind") or "linear"
        if kind not in MATRIX_KINDS:
            raise _manifest_error(where, f"entry {item['weight']!r}: kind {kind!r} not in {', '.join(MATRIX_KINDS)}")
        shape = item.get("shape") or ()
        if not isinstance(shape, (list, tuple)) or not all(_is_index(s) for s in shape):
            raise _manifest_error(where, f"entry {item['weight']!r}: shape must be a list of integers")
        out.append(ModelMatrix(member, int(layer), item["weight"], tuple(int(s) for s in shape), kind,
                               str(item.get("label") or f"mlp.{int(layer)}"), name))
    return out


def _is_index(value: Any) -> bool:
    """An int (not a bool) or a string of digits, as members are written (int in JSON, str in CSV)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


# --------------------------------------------------------------------------------------------------------- summary
def student_summary(split: Mapping[str, Mapping[str, Any]], n: Optional[int] = None) -> Dict[str, Any]:
    """Best/worst student of one split's ``{member: {"auc", ...}}`` and the two gaps of docs/method.md §1:
    ``spread = AUC_best − AUC_worst`` and ``gap = AUC_ensemble − AUC_best``; ``student_auc_sd`` = the standard
    deviation (ddof = 1) of the finite student AUCs.

    Members are ``0 .. n−1`` (``n`` defaults to the student keys present); a missing AUC is NaN and ignored by
    best/worst. Without any student AUC, ``best_student``/``worst_student`` are None and the numbers NaN;
    ``student_auc_sd`` is NaN with fewer than two.

    Example:
        >>> s = student_summary({"ensemble": {"auc": 0.8}, "0": {"auc": 0.7}, "1": {"auc": 0.75}})
        >>> s["best_student"], s["worst_student"], round(s["spread"], 10), round(s["gap"], 10)
        (1, 0, 0.05, 0.05)
        >>> round(s["student_auc_sd"], 10)  # |0.75 - 0.7| / sqrt(2)
        0.0353553391
    """
    members = range(n) if n is not None else sorted(int(k) for k in split if k != "ensemble")
    members = list(members)
    aucs = np.array([_auc(split, str(k)) for k in members], dtype=float)
    ensemble = _auc(split, "ensemble")
    finite = aucs[np.isfinite(aucs)]
    sd = float(np.std(finite, ddof=1)) if finite.size > 1 else float("nan")
    if finite.size == 0:
        return {"best_student": None, "best_student_auc": float("nan"), "worst_student": None,
                "worst_student_auc": float("nan"), "spread": float("nan"), "gap": float("nan"),
                "student_auc_sd": sd}
    best, worst = int(np.nanargmax(aucs)), int(np.nanargmin(aucs))
    return {"best_student": members[best], "best_student_auc": float(aucs[best]), "worst_student": members[worst],
            "worst_student_auc": float(aucs[worst]), "spread": float(aucs[best] - aucs[worst]),
            "gap": float(ensemble - aucs[best]), "student_auc_sd": sd}


def _auc(split: Mapping[str, Mapping[str, Any]], member: str) -> float:
    value = (split.get(member) or {}).get("auc")
    return float(value) if value is not None else float("nan")


# --------------------------------------------------------------------------------------------------------- readers
def find_spectrum(run_dir: Union[str, Path]) -> Optional[Path]:
    """The directory holding the run's ``spectrum.csv`` (and ``singular_values.npz``), or None."""
    for rel in SPECTRUM_LOCATIONS:
        if (Path(run_dir) / rel).is_file():
            return (Path(run_dir) / rel).parent
    return None


def read_metrics_csv(run_dir: Union[str, Path]) -> Any:
    """The run's ``metrics.csv`` as a DataFrame (``member`` as text), or None when it is missing (§6.3)."""
    import pandas as pd

    path = Path(run_dir) / METRICS
    return pd.read_csv(path, dtype={"member": str}) if path.is_file() else None


def read_spectrum_csv(path: Union[str, Path]) -> Any:
    """A ``spectrum.csv`` as a DataFrame (``member`` as text): the file, a spectrum directory, or a run directory
    (its :func:`find_spectrum`); None when a run directory has none."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        where = p if (p / SPECTRUM_CSV).is_file() else find_spectrum(p)
        if where is None:
            return None
        p = where / SPECTRUM_CSV
    return pd.read_csv(p, dtype={"member": str})


def read_singular_values(path: Union[str, Path], check_numbers: bool = False) -> Dict[str, np.ndarray]:
    """``{"<target>:<name>": σ (descending)}`` of a ``singular_values.npz`` (the file or its directory).

    Raises:
        UserError: the file is missing or damaged (one line), or, with ``check_numbers``, an array is not numeric.
    """
    from collapse_lab.io.safe_load import load_npz  # one-line errors for a damaged archive

    p = Path(path)
    p = p / SINGULAR_VALUES if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"{p}: no such file (run `collapse-lab spectrum` first)")
    arrays = load_npz(p, SINGULAR_VALUES)
    if check_numbers:
        for key, value in arrays.items():
            if value.dtype.kind not in "biuf":
                raise UserError(f"{p}: {key!r} holds {value.dtype} values, expected singular values (numbers)")
    return arrays


def read_rows(path: Union[str, Path], columns: Sequence[str], parse: Any, what: str) -> List[Tuple[Any, ...]]:
    """The data rows of one of the run's own CSV files (``metrics.csv``, ``spectra_trace.csv``), each turned into a
    tuple by ``parse(row)``, for a writer that resumes; a missing file gives ``[]``.

    Raises:
        UserError: a header other than ``columns`` (line 1), or a row ``parse`` rejects with ValueError
            ("FILE: line N: malformed <what> row [...]").
    """
    import csv

    p = Path(path)
    rows: List[Tuple[Any, ...]] = []
    if not p.exists():
        return rows
    with open(p, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is not None and tuple(header) != tuple(columns):
            raise UserError(f"{p}: line 1: expected header {','.join(columns)}")
        for line, row in enumerate(reader, start=2):
            try:
                rows.append(parse(row))
            except ValueError:
                raise UserError(f"{p}: line {line}: malformed {what} row {row!r}") from None
    return rows


def read_trace(path: Union[str, Path]) -> Any:
    """``spectra_trace.csv`` of a run directory (or the file itself) as a DataFrame; NaN stays NaN (§6.7)."""
    import pandas as pd

    p = Path(path)
    p = p / SPECTRA_TRACE if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"{p}: no such file (train with spectra_every >= 1)")
    df = pd.read_csv(p, dtype={"member": str})
    if tuple(df.columns) != TRACE_COLUMNS:
        raise UserError(f"{p}: line 1: expected header {','.join(TRACE_COLUMNS)}")
    return df
