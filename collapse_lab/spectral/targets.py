"""Which matrices to analyse: from a run directory's manifest, or discovered in any checkpoint by name and shape.

Targets (README "Spectral analysis"):

* ``weights`` — the student matrices the manifest lists (:func:`collapse_lab.io.contract.model_matrices`: the
  MLP's hidden Linear weights ``students.<k>.layers.<j>.linear.weight`` (H_j, H_{j−1}), and the cross, attention
  or conv1d/CIN weights of other students, an (out, in, 1) weight analysed as its (out, in) matrix): knowledge
  abundance (KDEF) is computed on these; member = k.
* ``embeddings`` — per-field tables ``embedding.tables.<field>.weight`` (V_f, D): Guo's information abundance;
  member = ``shared``.
* ``activations`` — probe activations ``students.<k>.layers.<j>`` (P, H_j) from ``probe.safetensors``.
* ``input`` — the probe's concatenated embedding input ``input`` (P, F·D); member = ``shared``.

A run directory is read through its ``manifest.json`` (``model.fields[*].table``,
``model.hidden_layers[*].weight/name``, ``checkpoints[*].path``, ``probe.path``, ``dataset.path`` for the
training-split counts). Anything else (a checkpoint directory, a ``.safetensors``/``.pt``/``.npy`` file,
foreign checkpoints) is classified by tensor name and shape: names containing ``emb`` or tall-and-thin
matrices (rows ≥ 16·cols and ≥ 1 000 rows) are embedding tables; other 2-D float ``weight`` tensors are layer
weights (member = the index after ``students/subnets/towers/experts/mlps/...``, else ``shared``); 1×H output
heads are reported but not analysed. Single concatenated tables (FuxiCTR/Multi-Embedding layout, offsets
cumsum(field_dims)) are sliced per field with ``field_dims`` — the IA of the whole table is a different number
(``docs/metrics.md`` §1.3).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from collapse_lab.errors import UserError
from collapse_lab.io.contract import (
    MANIFEST,
    model_matrices,
    parse_activation,
    parse_embedding_table,
    parse_hidden_weight,
    read_manifest,
)
from collapse_lab.io.inputs import check_regular_file
from collapse_lab.spectral.sources import (
    TENSOR_SUFFIXES,
    RowSource,
    StateDictTensors,
    TensorFile,
    TensorInfo,
    describe_entries,
    open_tensor_file,
)

__all__ = ["TARGETS", "MatrixSpec", "Discovery", "discover", "classify", "parse_targets", "find_run_root"]

TARGETS = ("weights", "embeddings", "activations", "input")

_HEAD = re.compile(r"(^|\.)(head|fusion\.head|output|out|final|fc_out|classifier)(\.|$)")
_MEMBER = re.compile(r"(?:^|\.)(?:students|subnets|sub_networks|subnetworks|members|experts|towers|mlps|dnns|"
                     r"nets|models|learners)\.(\d+)\.")
_EMB = re.compile(r"emb", re.IGNORECASE)
_NOT_PARAMETER = re.compile(r"(^|\.)(optimizer|optim|scheduler|lr_scheduler|exp_avg|exp_avg_sq|momentum_buffer|"
                            r"grad_scaler|scaler|rng_state|rng)(\.|$)")


@dataclass
class MatrixSpec:
    """One matrix to analyse."""

    target: str
    member: str
    name: str
    source: str  # file, relative to the analysed root
    matrix: RowSource
    field: str | None = None  # embedding field name (for training-split counts)
    kind: str = ""  # linear | cross | attention | embedding ("" when not known: foreign tensors, the input)
    label: str = ""  # the layer's label in its student (``mlp.0``), the field of a table; "" when not known


@dataclass
class Discovery:
    """What :func:`discover` found at a path."""

    root: Path | None  # None for an in-memory state dict
    kind: str  # run | checkpoint | file | state_dict
    specs: List[MatrixSpec]
    manifest: Dict[str, Any] | None = None
    counts_dir: Path | None = None
    notes: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def parse_targets(targets: Any) -> Tuple[str, ...] | None:
    """``None``/``"all"`` → None (every target present); a comma string or sequence → a checked tuple."""
    if targets is None or targets == "all":
        return None
    items = [t.strip() for t in targets.split(",")] if isinstance(targets, str) else [str(t) for t in targets]
    items = [t for t in items if t]
    bad = [t for t in items if t not in TARGETS]
    if bad or not items:
        raise UserError(f"unknown target(s) {', '.join(map(repr, bad)) or '(empty)'}; valid: {', '.join(TARGETS)}")
    return tuple(dict.fromkeys(items))


def classify(info: TensorInfo) -> Tuple[str | None, str, str | None, str]:
    """(target or None, member, field, reason) for one tensor, by name and shape.

    Example:
        >>> classify(TensorInfo("embedding.tables.user_id.weight", (944, 16), "float32"))[:3]
        ('embeddings', 'shared', 'user_id')
        >>> classify(TensorInfo("mlps.2.mlp.0.weight", (400, 624), "float32"))[:2]
        ('weights', '2')
        >>> classify(TensorInfo("students.0.head.weight", (1, 400), "float32"))[0] is None
        True
        >>> classify(TensorInfo("optimizer.state.0.exp_avg", (944, 16), "float32"))[3]
        'optimizer/trainer state'
    """
    if len(info.shape) != 2:
        return None, "", None, f"{len(info.shape)}-D"
    if not info.is_float:
        return None, "", None, f"not floating point ({info.dtype})"
    if _NOT_PARAMETER.search(info.name):
        return None, "", None, "optimizer/trainer state"
    ours = _canonical(info.name)
    if ours is not None:
        return (*ours, "name")
    rows, cols = info.shape
    if min(rows, cols) == 1:
        return None, "", None, "a vector/output head"
    if _HEAD.search(info.name) and min(rows, cols) <= 2:
        return None, "", None, "an output head"
    if _EMB.search(info.name) or (rows >= 16 * cols and rows >= 1000):
        parts = [p for p in info.name.split(".") if p not in ("weight", "embedding", "embeddings", "embedding_layer",
                                                              "embedding_layers", "table", "tables")]
        how = "name" if _EMB.search(info.name) else "shape"
        return "embeddings", "shared", (parts[-1] if parts else info.name), how
    m = _MEMBER.search(info.name)
    return "weights", (m.group(1) if m else "shared"), None, "name"


def _canonical(name: str) -> Tuple[str, str, str | None] | None:
    """(target, member, field) of a canonical tensor name (docs/architecture.md §4), None for any other."""
    field_name = parse_embedding_table(name)
    if field_name is not None:
        return "embeddings", "shared", field_name
    for parse, target in ((parse_hidden_weight, "weights"), (parse_activation, "activations")):
        found = parse(name)
        if found is not None:
            return target, str(found[0]), None
    return ("input", "shared", None) if name == "input" else None


def find_run_root(path: Path, levels: int = 3) -> Path | None:
    """The nearest directory at or above ``path`` (up to ``levels`` up) holding a collapse-lab manifest.json."""
    d = path if path.is_dir() else path.parent
    for _ in range(levels + 1):
        if (d / MANIFEST).is_file():
            return d
        if d.parent == d:
            break
        d = d.parent
    return None


def _get(manifest: Dict[str, Any], root: Path, *keys: str) -> Any:
    value: Any = manifest
    for k in keys:
        if not isinstance(value, dict) or k not in value:
            raise UserError(f"{root / MANIFEST}: missing key {'.'.join(keys)!r}")
        value = value[k]
    return value


def _model_file(directory: Path) -> Path:
    if (directory / "model.safetensors").is_file():
        return directory / "model.safetensors"
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in TENSOR_SUFFIXES
                   and p.name != "probe.safetensors")
    if not files:
        raise UserError(f"{directory}: no checkpoint file ({', '.join(TENSOR_SUFFIXES)}) and no manifest.json")
    if len(files) > 1:
        raise UserError(f"{directory}: several checkpoint files ({', '.join(p.name for p in files)}); pass one")
    return files[0]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _entries(manifest: Dict[str, Any], root: Path, key: str, fields: Tuple[str, ...]) -> List[Dict[str, Any]]:
    items = _get(manifest, root, "model", key)
    if not isinstance(items, list) or not all(isinstance(i, dict) and all(_is_name(i.get(f)) for f in fields)
                                              for i in items):
        raise UserError(f"{root / MANIFEST}: model.{key} must be a list of objects with keys "
                        f"{', '.join(fields)} (names)")
    return items


def _is_name(value: Any) -> bool:
    """A tensor/field name or a member index as the manifest writes them (str, or int for members)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _path_entry(entry: Any, root: Path, where: str) -> Path | None:
    """``root / entry["path"]`` of a manifest entry; None without a path.

    The runs this package writes record checkpoint and probe paths relative to the run directory, so a path
    that leads out of it (absolute, climbing out with ``..``, or through a symlink) is refused (a one-line UserError
    naming the manifest, the entry and the value): a copied or hand-edited manifest must not make
    ``spectrum RUN`` read, and report on, a file outside RUN.
    """
    if not isinstance(entry, dict) or not entry.get("path"):
        return None
    value = entry["path"]
    if not isinstance(value, str):
        raise UserError(f"{root / MANIFEST}: {where}.path must be a relative path, got {value!r}")
    real_root, real = root.resolve(), (root / value).resolve()
    if not real.is_relative_to(real_root):
        raise UserError(f"{root / MANIFEST}: {where}.path {value!r} resolves outside the run directory {root} "
                        f"(to {real}; expected a path inside it)")
    return root / value


def _from_manifest(tf: TensorFile, manifest: Dict[str, Any], root: Path, rel: str) -> List[MatrixSpec]:
    specs = [MatrixSpec("embeddings", "shared", f["table"], rel, tf.matrix(f["table"]), f["name"], "embedding",
                        str(f["name"])) for f in _entries(manifest, root, "fields", ("name", "table"))]
    specs += [MatrixSpec("weights", str(m.member), m.weight, rel, tf.matrix(m.weight), None, m.kind, m.label)
              for m in model_matrices(manifest, str(root / MANIFEST))]
    return specs


def _from_probe(tf: TensorFile, manifest: Dict[str, Any], root: Path, rel: str) -> List[MatrixSpec]:
    specs = [MatrixSpec("activations", str(m.member), m.activation, rel, tf.matrix(m.activation), None, m.kind,
                        m.label) for m in model_matrices(manifest, str(root / MANIFEST)) if m.activation is not None]
    if "input" in tf.entries:
        specs.append(MatrixSpec("input", "shared", "input", rel, tf.matrix("input")))
    return specs


def _by_name(tf: TensorFile, rel: str, skipped: List[str], by_shape: List[str],
             single_npy: bool = False) -> List[MatrixSpec]:
    specs = []
    for info in tf.entries.values():
        target, member, fld, reason = classify(info)
        if single_npy and len(info.shape) == 2 and info.is_float:
            target, member, fld = "activations", "shared", None
        if target is None:
            skipped.append(f"{info} ({reason})")
            continue
        if reason == "shape":
            by_shape.append(f"{info.name} {list(info.shape)}")
        kind, label = ("embedding", fld or "") if target == "embeddings" else ("", "")
        specs.append(MatrixSpec(target, member, info.name, rel, tf.matrix(info.name), fld, kind, label))
    return specs


def _slice_fields(specs: List[MatrixSpec], field_dims: Sequence[int], path: Path) -> List[MatrixSpec]:
    dims = [int(d) for d in field_dims]
    if not dims or any(d < 1 for d in dims):
        raise UserError(f"field_dims must be positive integers, got {list(field_dims)}")
    total = sum(dims)
    tables = [s for s in specs if s.target == "embeddings"]
    hits = [s for s in tables if s.matrix.shape[0] == total]
    if not hits:
        found = ", ".join(f"{s.name} ({s.matrix.shape[0]} rows)" for s in tables) or "no embedding table"
        raise UserError(f"{path}: field_dims sum to {total} rows, but no embedding table has that many; found: {found}")
    out = [s for s in specs if s not in hits]
    for s in hits:
        start = 0
        for i, d in enumerate(dims):
            view = s.matrix.rows(start, start + d)  # rows offsets[i] .. offsets[i] + field_dims[i] - 1
            out.append(MatrixSpec("embeddings", s.member, f"{s.name}:field{i}", s.source, view, None, "embedding",
                                  f"field{i}"))
            start += d
    return out


def discover(path: Any, targets: Any = None, field_dims: Sequence[int] | None = None,
             checkpoint: str = "best") -> Discovery:
    """Find the matrices to analyse at ``path`` (run dir, checkpoint dir or file).

    Args:
        path: a run directory (with ``manifest.json``), a checkpoint directory, a tensor file, or an in-memory
            ``nn.Module`` / state dict (classified by name and shape like a foreign checkpoint).
        targets: subset of :data:`TARGETS` (comma string or sequence); None = every target present.
        field_dims: rows per field of single concatenated embedding tables, to slice them per field.
        checkpoint: which manifest checkpoint of a run directory to read (``best`` by default).

    Raises:
        UserError: missing/unreadable files, a requested target absent, or no 2-D tensor at all.
    """
    in_memory = not isinstance(path, (str, os.PathLike))
    path = StateDictTensors(path) if in_memory else Path(path)
    wanted = parse_targets(targets)
    if wanted is not None and set(wanted) == set(TARGETS):
        wanted = None  # the full set means "every target present" (a checkpoint without a probe is fine)
    skipped: List[str] = []
    by_shape: List[str] = []
    if in_memory:
        specs = _by_name(path, path.path, skipped, by_shape)
        return _finish(path.path, "state_dict", None, None, None, specs, list(path.entries.values()), skipped,
                       by_shape, [], wanted, field_dims)
    if not path.exists():
        check_regular_file(path, "run directory, checkpoint or tensor file", missing="no such file or directory")
    notes: List[str] = []
    specs: List[MatrixSpec] = []
    entries: List[TensorInfo] = []
    run_root = find_run_root(path)
    manifest = None
    if run_root is not None and run_root == path:
        manifest = read_manifest(run_root)  # a run directory: its manifest must be valid
    elif run_root is not None:
        try:  # a file or checkpoint inside a run: the manifest only adds counts
            manifest = read_manifest(run_root)
        except UserError:
            manifest = None
    if manifest is not None and run_root == path:
        root, kind = path, "run"
        ckpts = _get(manifest, root, "checkpoints") or []
        if not isinstance(ckpts, list):
            raise UserError(f"{root / MANIFEST}: checkpoints must be a list, got {type(ckpts).__name__}")
        entry = next((c for c in ckpts if isinstance(c, dict) and c.get("name") == checkpoint), None)
        if entry is None:
            names = ", ".join(str(c.get("name")) for c in ckpts if isinstance(c, dict)) or "none yet"
            raise UserError(f"{root / MANIFEST}: no checkpoint named {checkpoint!r}; checkpoints: {names}")
        model_path = _path_entry(entry, root, f"checkpoint {checkpoint!r}")
        if model_path is None:
            raise UserError(f"{root / MANIFEST}: checkpoint {checkpoint!r} has no 'path'")
        tf = open_tensor_file(model_path)
        entries += tf.entries.values()
        specs += _from_manifest(tf, manifest, root, _rel(model_path, root))
        probe = manifest.get("probe") if isinstance(manifest.get("probe"), dict) else None
        if wanted is None or {"activations", "input"} & set(wanted):
            probe_path = _path_entry(probe, root, "probe")
            if probe_path is not None:
                ptf = open_tensor_file(probe_path)
                entries += ptf.entries.values()
                specs += _from_probe(ptf, manifest, root, _rel(probe_path, root))
            else:
                notes.append("no probe recorded in the manifest: activations and input not analysed")
    else:
        kind = "checkpoint" if path.is_dir() else "file"
        root = path if path.is_dir() else path.parent
        files = [_model_file(path)] if path.is_dir() else [path]
        if path.is_dir() and (path / "probe.safetensors").is_file():
            files.append(path / "probe.safetensors")
        for file in files:
            tf = open_tensor_file(file)
            entries += tf.entries.values()
            specs += _by_name(tf, _rel(file, root), skipped, by_shape, single_npy=tf.kind == "numpy")
    return _finish(path, kind, root, run_root, manifest, specs, entries, skipped, by_shape, notes, wanted,
                   field_dims)


def _finish(path: Any, kind: str, root: Path | None, run_root: Path | None, manifest: Dict[str, Any] | None,
            specs: List[MatrixSpec], entries: List[TensorInfo], skipped: List[str], by_shape: List[str],
            notes: List[str], wanted: Tuple[str, ...] | None, field_dims: Sequence[int] | None) -> Discovery:
    """Slice concatenated tables, apply ``targets``, check that something is left and collect the notes
    (``run_root``: the run directory whose ``manifest`` was read, None without one)."""
    if field_dims:
        specs = _slice_fields(specs, field_dims, path)
    if not any(len(i.shape) == 2 for i in entries):
        raise UserError(f"{path}: no 2-D tensor found; found: {describe_entries(entries)}")
    if wanted is not None:
        for t in wanted:
            if not any(s.target == t for s in specs):
                have = sorted({s.target for s in specs})
                raise UserError(f"{path}: no {t} found (found {', '.join(have) or 'no analysable matrix'}; "
                                f"tensors: {describe_entries(entries)})")
        specs = [s for s in specs if s.target in wanted]
    if not specs:
        reasons = Counter(s.rsplit(" (", 1)[-1].rstrip(")") for s in skipped)
        why = "; ".join(f"{n} {r}" for r, n in reasons.most_common())
        raise UserError(f"{path}: no analysable matrix" + (f" (not analysed: {why})" if why else "")
                        + f"; found: {describe_entries(entries)}")
    counts_dir = None
    if manifest is not None and isinstance(manifest.get("dataset"), dict) and manifest["dataset"].get("path"):
        if not isinstance(manifest["dataset"]["path"], str):
            raise UserError(f"{run_root / MANIFEST}: dataset.path must be a directory path, got "
                            f"{manifest['dataset']['path']!r}")
        counts_dir = Path(manifest["dataset"]["path"]) / "counts"
    if kind != "run":
        found_text = ", ".join(f"{n} {t}" for t, n in Counter(s.target for s in specs).items())
        notes.append(f"tensors classified by name and shape: {found_text}"
                     + (f"; embedding tables by shape: {', '.join(by_shape)}" if by_shape else ""))
    flat = [s for s in skipped if not s.endswith(("-D)",))]  # 2-D tensors left out, with the reason
    if flat or len(skipped) > len(flat):
        listed = "; ".join(flat[:8]) + (f"; ... {len(flat) - 8} more" if len(flat) > 8 else "")
        rest = len(skipped) - len(flat)
        notes.append("not analysed: " + "; ".join(x for x in (listed, f"{rest} tensors that are not 2-D" if rest
                                                               else "") if x))
    return Discovery(root, kind, specs, manifest, counts_dir, notes, skipped)
