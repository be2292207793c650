"""Fake run directories and a fake trainer for the sweep/results/plotting tests.

``write_fake_run`` writes every file of the run-directory contract (README "Run directory", interfaces:
manifest.json, metrics.csv, config.yaml, spectrum.csv, singular_values.npz) with plausible values that follow
the paper's qualitative pattern (vanilla students lose AUC with N, KD/DML/KDEF students do not). Spectral values
are computed with numpy from the stored singular values, so spectrum.csv and singular_values.npz agree.
``fake_train`` has the signature of ``collapse_lab.training.api.train`` and fails on purpose when a file
``fail-<method>-n<N>`` exists in the sweep directory (two levels above the run directory).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd
import yaml

__all__ = ["fake_config", "write_fake_run", "make_fake_sweep", "fake_train", "build_tiny_sweep", "TINY_GRID",
           "FIELDS", "HIDDEN", "EMB_DIM", "write_fake_dataset"]

#: the trainer a sweep test passes to run_sweep(trainer=...) so that no real training runs
FAKE_TRAINER = "sweep_fixtures:fake_train"


def fake_grid(name: str = "fake") -> str:
    """A small grid for the fake trainer: vanilla at N = 1, 2 and kdef at N = 2 (3 runs)."""
    return f"""
name: {name}
base: {{hidden_units: [8], max_epochs: 1}}
grid:
  method: [vanilla, kdef]
  n: [1, 2]
exclude:
  - {{method: kdef, n: 1}}
"""


FIELDS = {"user": 30, "item": 12, "genre": 7}  # name -> vocab_size
EMB_DIM = 4
HIDDEN = (16, 12, 8)
PROBE = 64
TAU = 4.0


def fake_config(method: str = "vanilla", fusion: str = "mean", n: int = 2, seed: int = 0,
                dataset: str = "synthetic", **extra: Any) -> Dict[str, Any]:
    """A flat resolved-looking config."""
    cfg = {"dataset": dataset, "data_root": None, "method": method, "fusion": fusion, "n": n, "student": "mlp",
           "hidden_units": list(HIDDEN), "embedding_dim": EMB_DIM, "net_dropout": 0.1, "batch_norm": True,
           "embedding_regularizer": 1e-5, "batch_size": 256, "lr": 1e-3, "max_epochs": 3, "seed": seed}
    cfg.update(extra)
    return cfg


def _rng(config: Dict[str, Any]) -> np.random.Generator:
    key = json.dumps(config, sort_keys=True).encode()
    return np.random.default_rng(int(hashlib.sha256(key).hexdigest()[:12], 16))


def _aucs(config: Dict[str, Any], rng: np.random.Generator) -> Dict[str, float]:
    method, n = config["method"], int(config["n"])
    base = 0.78 + 0.002 * rng.standard_normal()
    trend = {"vanilla": -0.0005, "kd": 0.001, "dml": 0.0002, "kdef": 0.0012}.get(method, 0.0)
    ens = base + trend * (n - 1)
    if method == "vanilla":
        students = ens - 0.01 * (n - 1) - 0.004 * rng.random(n) * (n > 1)
    elif method == "kd":
        students = ens - 0.002 * (n - 1) - 0.0005 * rng.random(n)
    else:
        students = ens - 0.0008 - 0.0002 * rng.random(n)
    if n == 1:
        students = np.array([ens])
    return {"ensemble": float(ens), **{str(k): float(a) for k, a in enumerate(students)}}


def _metrics_block(aucs: Dict[str, float], shift: float = 0.0) -> Dict[str, Dict[str, float]]:
    return {m: {"auc": a + shift, "logloss": 0.55 - 0.5 * (a - 0.78) - shift} for m, a in aucs.items()}


def _spectrum_stats(sigma: np.ndarray, tau: float) -> Dict[str, float]:
    s = sigma[sigma > 0]
    p = s / s.sum()
    return {"knowledge_abundance": float((s > tau).sum() / max(len(s), 1)),
            "information_abundance": float(s.sum() / s.max()),
            "effective_rank": float(np.exp(-(p * np.log(p)).sum())),
            "stable_rank": float((s**2).sum() / s.max() ** 2)}


def _write_spectra(run_dir: Path, config: Dict[str, Any], rng: np.random.Generator) -> None:
    n, method = int(config["n"]), config["method"]
    rows: List[Dict[str, Any]] = []
    svs: Dict[str, np.ndarray] = {}

    def add(target: str, member: str, name: str, matrix: np.ndarray, baseline_matrix: np.ndarray) -> None:
        sigma = np.linalg.svd(matrix, compute_uv=False)
        base = _spectrum_stats(np.linalg.svd(baseline_matrix, compute_uv=False), TAU)
        svs[f"{target}:{name}"] = sigma.astype(np.float64)
        for metric, value in _spectrum_stats(sigma, TAU).items():
            if metric == "knowledge_abundance" and target != "weights":
                continue
            b = base[metric] if metric != "knowledge_abundance" else np.nan
            rows.append({"source": "checkpoints/best/model.safetensors", "member": member, "target": target,
                         "name": name, "rows": matrix.shape[0], "cols": matrix.shape[1], "convention": "raw",
                         "metric": metric, "value": value, "baseline": b, "ratio": value / b if b else np.nan})

    scale = {"vanilla": 0.5 - 0.02 * n, "kd": 0.55, "dml": 0.55, "kdef": 0.6 + 0.01 * n}.get(method, 0.5)
    for field, vocab in FIELDS.items():
        table = rng.standard_normal((vocab, 2)) @ rng.standard_normal((2, EMB_DIM)) + 0.3 * rng.standard_normal(
            (vocab, EMB_DIM))
        add("embeddings", "shared", f"embedding.tables.{field}.weight", table, rng.standard_normal(table.shape))
    width_in = len(FIELDS) * EMB_DIM
    add("input", "shared", "input", rng.standard_normal((PROBE, width_in)), rng.standard_normal((PROBE, width_in)))
    for k in range(n):
        h_in = width_in
        for j, h in enumerate(HIDDEN):
            w = rng.standard_normal((h, h_in)) * scale * (1.6 - 0.3 * j)
            add("weights", str(k), f"students.{k}.layers.{j}.linear.weight", w, rng.standard_normal(w.shape))
            act = np.maximum(rng.standard_normal((PROBE, h)) * np.linspace(2.0, 0.1, h) ** (1 + j), 0)
            add("activations", str(k), f"students.{k}.layers.{j}", act - act.mean(0), rng.standard_normal(act.shape))
            h_in = h
    pd.DataFrame(rows).to_csv(run_dir / "spectrum.csv", index=False)
    np.savez(run_dir / "singular_values.npz", **svs)


def _write_metrics(run_dir: Path, config: Dict[str, Any], aucs: Dict[str, float], best_epoch: int,
                   epochs: int, rng: np.random.Generator) -> Dict[str, Optional[float]]:
    n, method = int(config["n"]), config["method"]
    rows: List[Dict[str, Any]] = []
    lam_last: Dict[str, Optional[float]] = {"lambda_mean": None, "lambda_std": None, "mu_mean": None,
                                            "mu_std": None}
    for epoch in range(1, epochs + 1):
        step = epoch * 10
        for metric, value in (("loss", 0.6 - 0.02 * epoch), ("task_loss", 0.55 - 0.02 * epoch), ("lr", 1e-3)):
            rows.append((epoch, step, "train", "ensemble", metric, value))
        if method == "kdef" and n > 1:
            lam = np.full(n, 1.0 / n) + 0.01 * rng.standard_normal(n)
            lam /= lam.sum()
            for k in range(n):
                rows.append((epoch, step, "train", str(k), "lambda", float(lam[k])))
            mu_mean, mu_std = 1.0 / (n - 1), 0.005 * rng.random()
            lam_last = {"lambda_mean": float(lam.mean()), "lambda_std": float(lam.std() + 0.002),
                        "mu_mean": mu_mean, "mu_std": mu_std}
            for metric, value in lam_last.items():
                rows.append((epoch, step, "train", "ensemble", metric, value))
        for member, m in _metrics_block(aucs, shift=0.003 * (epoch - best_epoch) * (epoch > best_epoch)).items():
            rows.append((epoch, step, "valid", member, "auc", m["auc"]))
            rows.append((epoch, step, "valid", member, "logloss", m["logloss"]))
    for split in ("test", "valid"):
        for member, m in _metrics_block(aucs).items():
            rows.append((best_epoch, best_epoch * 10, split, member, "auc", m["auc"]))
            rows.append((best_epoch, best_epoch * 10, split, member, "logloss", m["logloss"]))
    pd.DataFrame(rows, columns=["epoch", "step", "split", "member", "metric", "value"]).to_csv(
        run_dir / "metrics.csv", index=False)
    return lam_last


def write_fake_run(run_dir: Path, config: Dict[str, Any], *, status: str = "complete", spectra: bool = True,
                   aucs: Optional[Dict[str, float]] = None, dataset_hash: Optional[str] = None) -> Path:
    """Write a complete fake run directory for ``config`` (or with the given per-member test AUCs); the manifest
    records ``dataset_hash`` as the content hash of the data it was trained on."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = _rng(config)
    n = int(config["n"])
    aucs = aucs or _aucs(config, rng)
    epochs, best_epoch = 3, 2
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    lam = _write_metrics(run_dir, config, aucs, best_epoch, epochs, rng)
    students = {k: v for k, v in aucs.items() if k != "ensemble"}
    best = max(students, key=students.get)
    worst = min(students, key=students.get)
    summary = {"ensemble_auc": aucs["ensemble"], "ensemble_logloss": 0.55, "best_student": int(best),
               "best_student_auc": students[best], "worst_student": int(worst), "worst_student_auc": students[worst],
               "spread": students[best] - students[worst], "gap": aucs["ensemble"] - students[best], **lam}
    widths_in = (len(FIELDS) * EMB_DIM, *HIDDEN[:-1])
    layers = [{"member": k, "layer": j, "name": f"students.{k}.layers.{j}",
               "weight": f"students.{k}.layers.{j}.linear.weight", "shape": [h, h_in]}
              for k in range(n) for j, (h, h_in) in enumerate(zip(HIDDEN, widths_in, strict=True))]
    manifest = {
        "schema_version": 1, "kind": "collapse-lab-run", "status": status,
        "error": None if status == "complete" else "boom", "created": "2025-01-01T00:00:00+00:00",
        "updated": "2025-01-01T00:01:00+00:00", "package_version": "0.1.0",
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False}, "environment": {},
        "device": "cpu", "config": config, "seeds": {"run": config["seed"], "students": list(range(n))},
        "dataset": {"id": config["dataset"], "path": "/nowhere", "hash": dataset_hash,
                    "rows": {"train": 800, "valid": 100, "test": 100}},
        "model": {"num_students": n, "student": "mlp", "fusion": config["fusion"], "embedding_dim": EMB_DIM,
                  "fields": [{"name": f, "type": "categorical", "vocab_size": v,
                              "table": f"embedding.tables.{f}.weight", "shape": [v, EMB_DIM]}
                             for f, v in FIELDS.items()],
                  "hidden_layers": layers, "parameters": {"embedding": 196, "students": [500] * n, "fusion": 0,
                                                          "total": 196 + 500 * n}},
        "checkpoints": [{"name": "best", "path": "checkpoints/best/model.safetensors", "epoch": best_epoch,
                         "step": best_epoch * 10, "sha256": "0" * 64, "metrics": {}}],
        "probe": {"path": "probe.safetensors", "split": "valid", "rows": PROBE},
        "results": {"best_epoch": best_epoch, "epochs_run": epochs, "valid": _metrics_block(aucs),
                    "test": _metrics_block(aucs), "summary": summary},
    }
    if status != "complete":
        del manifest["results"]
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if spectra and status == "complete":
        _write_spectra(run_dir, config, rng)
    return run_dir


def make_fake_sweep(root: Path, variants: Iterable[tuple] = (("vanilla", "mean"), ("kd", "mean"),
                                                             ("dml", "mean"), ("kdef", "mean")),
                    ns: Sequence[int] = (1, 2, 4), seeds: Sequence[int] = (0, 1, 2), name: str = "fake",
                    dataset: str = "synthetic") -> Path:
    """A sweep directory with ``runs/<name>`` for every variant × N × seed (N = 1 only for vanilla-mean)."""
    root = Path(root)
    runs = []
    for method, fusion in variants:
        for n in ns:
            if n == 1 and (method, fusion) != ("vanilla", "mean"):
                continue
            for seed in seeds:
                cfg = fake_config(method, fusion, n, seed, dataset=dataset)
                run = f"{method}-{fusion}-n{n}-s{seed}"
                write_fake_run(root / "runs" / run, cfg)
                runs.append({"name": run, "status": "complete", "config": cfg})
    (root / "sweep.json").write_text(json.dumps({"schema_version": 1, "kind": "collapse-lab-sweep",
                                                 "id": f"{name}-12345678", "name": name, "runs": runs}))
    return root


def write_fake_dataset(data_root: Path, name: str, content_hash: Optional[str]) -> Path:
    """A processed-dataset directory as far as the sweep looks at one: ``feature_map.json`` (so the name resolves)
    and ``meta.json`` with ``content_hash`` (none when None), as ``collapse-lab data prepare`` would leave it after
    preparing it again with other options."""
    path = Path(data_root) / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "feature_map.json").write_text("{}")
    meta = {"dataset_id": name} if content_hash is None else {"dataset_id": name, "content_hash": content_hash}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def _prepared_hash(config: Any) -> Optional[str]:
    """The content hash of the dataset prepared for ``config`` (as training records it), None if not prepared."""
    from collapse_lab.data.catalog import resolve_processed
    from collapse_lab.data.meta import read_meta
    from collapse_lab.errors import UserError

    try:
        return (read_meta(resolve_processed(config["dataset"], config.get("data_root"))) or {}).get("content_hash")
    except UserError:
        return None


def fake_train(config: Any, out_dir: Any = None, resume: bool = False, overwrite: bool = False,
               device: str = "auto", progress: Any = None, console: bool = True) -> Dict[str, Any]:
    """A trainer with ``train``'s signature that writes a fake run to ``out_dir`` (or fails on purpose); like
    ``train`` its manifest records the content hash of the dataset prepared for the config."""
    run_dir = Path(out_dir)
    flag = run_dir.parent.parent / f"fail-{config['method']}-n{config['n']}"
    if flag.exists():
        raise RuntimeError(f"planned failure for {config['method']} n={config['n']}")
    if run_dir.exists() and not overwrite:
        raise FileExistsError(run_dir)
    calls = run_dir.parent.parent / "calls.txt"
    with open(calls, "a") as fh:
        fh.write(run_dir.name + "\n")
    write_fake_run(run_dir, dict(config), dataset_hash=_prepared_hash(config))
    return {"run_dir": run_dir}


TINY_GRID = """
name: tiny
description: a real sweep on the synthetic dataset, small enough for the test suite
base: {{dataset: synthetic, data_root: {data_root}, hidden_units: [16, 16], embedding_dim: 4, batch_size: 1024,
        max_epochs: 2, probe_rows: 128, lr: 0.01}}
grid:
  method: [vanilla, kdef]
  n: [1, 2]
  seed: [1, 2]
exclude:
  - {{method: kdef, n: 1}}
"""


@functools.cache
def build_tiny_sweep(root: Path) -> Dict[str, Any]:
    """Run ``collapse-lab reproduce`` once per test session on a 6-run grid of real training on the built-in
    synthetic dataset (prepared by the pipeline), with spectra, results and figures.

    Returns ``{"root", "grid", "sweep", "figures", "output", "exit_code"}``.
    """
    from click.testing import CliRunner

    from collapse_lab.cli import cli

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    grid = root / "tiny.yaml"
    grid.write_text(TINY_GRID.format(data_root=root / "data"))
    sweep, figures = root / "sweep", root / "figures"
    result = CliRunner().invoke(cli, ["reproduce", "--preset", str(grid), "--out", str(sweep), "--figures",
                                      str(figures), "--threads", "1"])
    return {"root": root, "grid": grid, "sweep": sweep, "figures": figures, "output": result.output,
            "exit_code": result.exit_code, "exception": result.exception}
