"""Run every benchmark on a quiet machine and keep the JSON reports under bench/results/.

Usage: ``python bench/run_all.py [--quick]``; ``python bench/run_all.py --perf-table`` runs only
``bench/perf_table.py`` (collapse-lab against the EKTF-equivalent per N and precision, docs/performance.md
§3.1). The full set takes tens of minutes on 2 CPU cores (the 10M-row prepare, the 4M x 16 spectra, the KDEF
throughput for N in {1, 2, 4, 10} and the cost of spectra during training on ML-100K at N = 1 and 3); ``--quick``
runs reduced sizes to check that everything works. Speed figures are ratios measured within one process (see
each script).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--perf-table", action="store_true",
                        help="only bench/perf_table.py -> bench/results/perf-table.{md,json}")
    args = parser.parse_args()
    if args.perf_table:
        quick = ["--students", "1,2", "--batch-size", "256", "--hidden", "32,32", "--cell-seconds", "0.5",
                 "--peak-size", "256", "--out-dir", str(HERE / "results" / "quick")] if args.quick else []
        sys.exit(subprocess.call([sys.executable, str(HERE / "perf_table.py"), *quick]))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    tag = "quick" if args.quick else "full"
    jobs = {
        "data": ["bench_data.py"] + (["--rows", "200000"] if args.quick else ["--rows", "10000000"]),
        "spectral": ["bench_spectral.py"] + (["--table-rows", "400000", "--criteo-fields", "4",
                                              "--criteo-rows", "100000", "--act-rows", "100000"]
                                             if args.quick else []),
        "train": ["bench_train.py"] + (["--students", "1,2", "--steps", "3", "--warmup", "1"] if args.quick else []),
        "train_ml100k": ["bench_train.py", "--ml100k-seeds", "1" if args.quick else "5"],
        "spectra_overhead": ["bench_train.py", "--spectra-overhead"] + (["1", "--set", "max_epochs=2"] if args.quick
                                                                        else ["1,3"]),
    }
    failed = []
    for name, argv in jobs.items():
        target = out / f"{name}-{tag}.json"
        print(f"== {name}: {' '.join(argv)} -> {target}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / argv[0]), *argv[1:], "--json-out", str(target)])
        if rc != 0:
            failed.append(name)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
