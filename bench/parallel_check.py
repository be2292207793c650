"""Multi-process training of one run against one process (docs/architecture.md §11), on the CPU or GPUs.

Trains one config on a synthetic dataset three times: in this process, then under
``torchrun --nproc_per_node=G ... train --parallel data`` and ``--parallel ensemble`` (NCCL on CUDA, gloo on
the CPU), and compares metrics.csv and the test ensemble AUC. The config has neither BatchNorm nor dropout,
so the runs differ only by float rounding (sums over ranks add in another order; Adam carries the differences
over the steps): within ``--tol`` on the CPU (measured on 2 cores, 20,000 rows, 2 processes: at most 3e-5);
on CUDA the embedding backward (atomic adds) is not deterministic either, hence the looser default there.
Exit code 1 when a difference exceeds the tolerance; JSON with the numbers and the wall times to ``--json-out``.

    python bench/parallel_check.py --device cpu --nproc 2
    python bench/parallel_check.py --device cuda --nproc 4 --json-out /tmp/parallel.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--nproc", type=int, default=2, help="processes (one per GPU on CUDA)")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--tol", type=float, default=None, help="max |metric difference| (default 1e-4 CPU, 2e-3 CUDA)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    tol = args.tol if args.tol is not None else (1e-4 if args.device == "cpu" else 2e-3)

    import numpy as np
    import pandas as pd

    from collapse_lab.data.synthetic import make_synthetic
    from collapse_lab.training.api import RunResult, train

    root = Path(tempfile.mkdtemp(prefix="parallel-check-"))
    dataset = make_synthetic(root / "syn", rows=args.rows, fields=4, vocab_size=50, rank=2, seed=1)
    overrides = [f"dataset={dataset}", "n=4", "hidden_units=[64,64]", "embedding_dim=8", "batch_size=512",
                 "lr=0.005", "max_epochs=2", "batch_norm=false", "net_dropout=0.0", "probe_rows=0",
                 "spectra_every=0"]
    report: dict = {"device": args.device, "nproc": args.nproc, "rows": args.rows, "tolerance": tol, "runs": {}}
    tick = time.perf_counter()
    single = train(overrides, root / "single", device=args.device, console=False, progress=False)
    report["runs"]["none"] = {"wall_s": round(time.perf_counter() - tick, 2),
                              "test_auc": single.summary["ensemble_auc"]}
    reference = pd.read_csv(single.run_dir / "metrics.csv")
    failed = 0
    for strategy in ("data", "ensemble"):
        out = root / strategy
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "collapse_lab", "train", "--parallel", strategy, "--device", args.device, "--out", str(out),
               "--no-progress", *overrides]
        tick = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = round(time.perf_counter() - tick, 2)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            report["runs"][strategy] = {"wall_s": wall, "error": f"exit {proc.returncode}"}
            failed += 1
            continue
        metrics = pd.read_csv(out / "metrics.csv")
        diff = float(np.nanmax(np.abs(metrics["value"].to_numpy() - reference["value"].to_numpy())))
        auc = RunResult.from_run_dir(out).summary["ensemble_auc"]
        report["runs"][strategy] = {"wall_s": wall, "test_auc": auc, "max_metric_diff": diff}
        failed += diff > tol
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
