"""Does precision=bf16 cost accuracy? ML-100K, the same runs in fp32 and bf16, paired by seed.

For every seed, one run per precision with otherwise identical config (default: vanilla, N = 1, students
[400]*3, batch 4096, the ML-100K schedule; spectra and probe off, they do not change training). Reported per
run: test ensemble AUC and logloss, epochs, training seconds; per seed the paired difference

    d_s = AUC_bf16(s) - AUC_fp32(s),   mean(d) and its 95% t interval  mean ± t_{0.975, S-1} * sd(d) / sqrt(S)

and whether ``|mean(d)| <= 0.001`` (the goal in docs/performance.md §3.1). Runs go ``--jobs`` at a time with
``--threads`` torch threads each. Writes ``<out-dir>/bf16-auc.csv`` and ``bf16-auc.md``.

Usage: ``COLLAPSE_LAB_DATA=... python bench/bf16_auc.py [--seeds 1,2,3] [--set method=kdef --set n=3]``
(``collapse-lab data prepare movielens-100k`` first).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

HERE = Path(__file__).resolve().parent
BASE = ["dataset=movielens-100k", "method=vanilla", "n=1", "batch_size=4096", "spectra_every=0", "probe_rows=0"]


def one_run(overrides: Sequence[str], out: str, threads: int) -> Dict[str, Any]:
    from collapse_lab.training.api import train

    t0 = time.perf_counter()
    result = train([*overrides, f"num_threads={threads}"], Path(out), overwrite=True, device="cpu", progress=False,
                   console=False)
    test = result.results["test"]["ensemble"]
    return {"test_auc": test["auc"], "test_logloss": test["logloss"], "epochs_run": result.results["epochs_run"],
            "wall_seconds": time.perf_counter() - t0,
            "train_samples_per_s": sum(result.manifest["timing"]["train_samples_per_s"])
            / max(len(result.manifest["timing"]["train_samples_per_s"]), 1),
            "effective_precision": result.manifest["model"]["precision"]}


def paired(values: List[float]) -> Dict[str, float]:
    import numpy as np
    from scipy import stats

    d = np.asarray(values, dtype=float)
    sd = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    half = float(stats.t.ppf(0.975, d.size - 1) * sd / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return {"mean": float(d.mean()), "sd": sd, "ci95_low": float(d.mean()) - half, "ci95_high": float(d.mean()) + half}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides key=value")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    import pandas as pd

    seeds = [int(s) for s in args.seeds.split(",")]
    config = [*BASE, *args.set]
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bf16-auc-") as tmp, cf.ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(one_run, [*config, f"seed={s}", f"precision={p}"], f"{tmp}/{p}-{s}", args.threads):
                   (s, p) for s in seeds for p in ("fp32", "bf16")}
        for fut in cf.as_completed(futures):
            s, p = futures[fut]
            rows.append({"seed": s, "precision": p, **fut.result()})
            print(f"seed {s} {p}: test AUC {rows[-1]['test_auc']:.5f}", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows).sort_values(["seed", "precision"], ascending=[True, False])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out_dir / "bf16-auc.csv", index=False)
    wide = df.pivot(index="seed", columns="precision")
    diff = {m: paired(list(wide[m]["bf16"] - wide[m]["fp32"])) for m in ("test_auc", "test_logloss")}
    speed = paired(list(wide["train_samples_per_s"]["bf16"] / wide["train_samples_per_s"]["fp32"]))
    a = diff["test_auc"]
    met = abs(a["mean"]) <= 0.001
    established = max(abs(a["ci95_low"]), abs(a["ci95_high"])) <= 0.001  # the whole interval within ±0.001
    lines = ["# bf16 vs fp32 on ML-100K (paired by seed)", "",
             f"Config: {' '.join(config)}; seeds {seeds}; {args.jobs} runs at a time, {args.threads} torch thread(s) "
             f"each; load average {', '.join(f'{x:.2f}' for x in load_start)} at start, "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at end.", "",
             "| seed | precision | test AUC | test logloss | epochs | training samples/s |",
             "|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.seed} | {r.precision} | {r.test_auc:.5f} | {r.test_logloss:.5f} | {r.epochs_run} "
                     f"| {r.train_samples_per_s:,.0f} |")
    lines += ["", f"Paired difference bf16 − fp32, test AUC: {a['mean']:+.5f} (sd {a['sd']:.5f}, 95% t interval "
              f"[{a['ci95_low']:+.5f}, {a['ci95_high']:+.5f}]); logloss {diff['test_logloss']['mean']:+.5f}. "
              f"Goal |mean| ≤ 0.001: point estimate {'within' if met else 'outside'} it; "
              f"{'established' if established else 'not established'} (the 95% interval is "
              f"{'inside' if established else 'not inside'} ±0.001).",
              f"Training throughput bf16 / fp32 (per seed, mean): {speed['mean']:.2f}x.", ""]
    (args.out_dir / "bf16-auc.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
