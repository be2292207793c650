"""Baseline strength: collapse-lab's single model beside FuxiCTR 2.3.10's DNN on the same ML-100K split and seeds.

Both models get the ``ml100k`` preset's hyperparameters (``configs/sweeps/ml100k.yaml`` ``base``: MLP
[400, 400, 400], BatchNorm, dropout 0.1, embedding dim 16, embedding L2 0.01, batch 4096, Adam lr 1e-3,
patience 2, reduce-LR-on-plateau x0.1, gradient norm clipped at 10, validation AUC monitor) on the prepared
split of ``--dataset`` (ids, vocabularies and rows shared: FuxiCTR reads our arrays, ``bench/fuxictr_dnn.py``).

* ours: ``collapse_lab.train`` with ``method=vanilla, n=1`` (the sweep's single model), in this process;
* FuxiCTR: ``bench/fuxictr_dnn.py`` in FuxiCTR's own venv (``--fuxictr-python``; ``bench/fuxictr_baseline.sh``
  builds it), once per sequence pooling of ``--poolings``: ``average`` is FuxiCTR's default
  ``MaskedAveragePooling``, ``sum`` its ``MaskedSumPooling`` (what collapse-lab used before issue 10 §1).

Written: ``<out-dir>/fuxictr-baseline.csv`` (one row per library, pooling and seed: test/valid AUC and
logloss, epochs, seconds, parameters) and ``<out-dir>/fuxictr-baseline.json`` (the rows, the summary per model
with mean, SD over seeds and 95% t interval, and the seed-paired difference of each FuxiCTR pooling from ours
with its 95% t interval). The pooling collapse-lab used is read from the dataset's ``feature_map.json``.
Not a test: it trains 3 x (1 + len(poolings)) models (about 15 CPU minutes with one thread each).

Example::

    bash bench/fuxictr_baseline.sh                      # builds bench/.venv-fuxictr, then runs this script
    python bench/fuxictr_baseline.py --fuxictr-python bench/.venv-fuxictr/bin/python --seeds 2024
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("hidden_units", "embedding_dim", "net_dropout", "batch_norm", "embedding_regularizer", "batch_size", "lr",
        "max_epochs", "patience")


def preset_hyperparameters() -> Dict[str, Any]:
    """The ``ml100k`` preset's training keys, completed by the config defaults both libraries share."""
    from collapse_lab.config import resolve_config
    from collapse_lab.sweep.grid import load_grid
    from collapse_lab.sweep.reproduce import resolve_preset

    cfg = resolve_config(dict(load_grid(resolve_preset("ml100k")).base))
    if (cfg.lr_decay_factor, cfg.min_lr) != (0.1, 1e-6):
        raise SystemExit("the preset changes the plateau schedule, which FuxiCTR's lr_decay() fixes at x0.1, 1e-6")
    return {**{k: getattr(cfg, k) for k in KEYS}, "clip_grad_norm": cfg.clip_grad_norm, "dataset": cfg.dataset}


def our_pooling(data_dir: Path) -> Dict[str, str]:
    """Sequence field -> the pooling collapse-lab applies (``pooling`` in ``feature_map.json``; absent: the masked
    mean, as the model reads such a map)."""
    fields = json.loads((data_dir / "feature_map.json").read_text())["fields"]
    out = {}
    for f in fields:
        if f["type"] == "sequence":
            # a map prepared before ``pooling`` was recorded is read as FuxiCTR's default, the masked mean
            out[f["name"]] = f"masked {f.get('pooling') or 'mean'}"
    return out


def train_ours(params: Dict[str, Any], seeds: Sequence[int], threads: int, runs: Path) -> List[Dict[str, Any]]:
    from collapse_lab.training.api import train

    rows = []
    for seed in seeds:
        config = {**{k: params[k] for k in KEYS}, "dataset": params["dataset"], "method": "vanilla", "n": 1,
                  "seed": seed, "probe_rows": 0, "num_threads": threads}
        start = time.perf_counter()
        result = train(config, out_dir=runs / f"ours-s{seed}", progress=False, console=False)
        seconds = time.perf_counter() - start  # training plus the final valid/test scoring
        res = result.results
        rows.append({"library": "collapse-lab", "model": "vanilla n=1", "seed": seed,
                     "test_auc": res["test"]["ensemble"]["auc"], "test_logloss": res["test"]["ensemble"]["logloss"],
                     "valid_auc": res["valid"]["ensemble"]["auc"],
                     "valid_logloss": res["valid"]["ensemble"]["logloss"], "epochs_run": res["epochs_run"],
                     "train_seconds": seconds,
                     "parameters": result.manifest["model"]["parameters"]["total"]})
    return rows


def train_fuxictr(python: str, data_dir: Path, params: Dict[str, Any], seeds: Sequence[int], pooling: str,
                  threads: int, tmp: Path) -> List[Dict[str, Any]]:
    out = tmp / f"fuxictr-{pooling}.json"
    fuxi = {**{k: params[k] for k in KEYS}, "clip_grad_norm": params["clip_grad_norm"]}
    cmd = [python, str(ROOT / "bench" / "fuxictr_dnn.py"), "--data", str(data_dir), "--params", json.dumps(fuxi),
           "--seeds", ",".join(map(str, seeds)), "--pooling", pooling, "--threads", str(threads), "--out", str(out)]
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """Mean, SD (ddof 1) and the 95% t interval half-width of the mean (scipy.stats.t)."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    sd = float(x.std(ddof=1)) if x.size > 1 else float("nan")
    half = float(stats.t.ppf(0.975, x.size - 1) * sd / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return {"mean": float(x.mean()), "sd": sd, "ci95_half_width": half, "n": int(x.size)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuxictr-python", default=str(ROOT / "bench" / ".venv-fuxictr" / "bin" / "python"))
    parser.add_argument("--seeds", default="2024,2025,2026")
    parser.add_argument("--poolings", default="average,sum")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    import pandas as pd

    from collapse_lab.data.catalog import resolve_processed
    from collapse_lab.io.atomic import atomic_write_json, atomic_write_text

    seeds = [int(s) for s in args.seeds.split(",")]
    params = preset_hyperparameters()
    data_dir = resolve_processed(params["dataset"], None).resolve()
    with tempfile.TemporaryDirectory(prefix="fuxictr-baseline-") as tmp:
        rows = [{**r, "pooling": "; ".join(f"{k}: {v}" for k, v in our_pooling(data_dir).items())}
                for r in train_ours(params, seeds, args.threads, Path(tmp))]
        for pooling in args.poolings.split(","):
            rows += train_fuxictr(args.fuxictr_python, data_dir, params, seeds, pooling, args.threads, Path(tmp))
    df = pd.DataFrame(rows)
    df["name"] = [r["library"] if r["library"] == "collapse-lab" else f"fuxictr-{r['pooling']}" for r in rows]
    summary = {name: {m: summarize(g[m]) for m in ("test_auc", "test_logloss")} for name, g in df.groupby("name")}
    ours = df[df["name"] == "collapse-lab"].set_index("seed")
    paired = {}
    for name, g in df[df["name"] != "collapse-lab"].groupby("name"):
        g = g.set_index("seed").loc[ours.index]
        paired[f"{name} - collapse-lab"] = {m: summarize(g[m] - ours[m]) for m in ("test_auc", "test_logloss")}
    out = {"dataset": params["dataset"], "data_dir": str(data_dir), "hyperparameters": params, "seeds": seeds,
           "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "threads": args.threads},
           "summary": summary, "paired_difference": paired, "rows": rows}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cols = ["name", "library", "model", "pooling", "seed", "test_auc", "test_logloss", "valid_auc", "valid_logloss",
            "epochs_run", "train_seconds", "parameters"]
    atomic_write_text(args.out_dir / "fuxictr-baseline.csv", df[cols].to_csv(index=False))
    atomic_write_json(args.out_dir / "fuxictr-baseline.json", out)
    for name, s in summary.items():
        a, ll = s["test_auc"], s["test_logloss"]
        print(f"{name:22s} test AUC {a['mean']:.4f} ± {a['sd']:.4f} (SD over {a['n']} seeds)  "
              f"logloss {ll['mean']:.4f} ± {ll['sd']:.4f}")
    for name, s in paired.items():
        a = s["test_auc"]
        print(f"{name:35s} AUC {a['mean']:+.4f} [{a['mean'] - a['ci95_half_width']:+.4f}, "
              f"{a['mean'] + a['ci95_half_width']:+.4f}] (paired by seed, 95% t)")


if __name__ == "__main__":
    main()
