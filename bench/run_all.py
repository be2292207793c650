"""Run every benchmark on a quiet machine and keep the JSON reports under bench/results/.

Usage: ``python bench/run_all.py [--quick]``. ``python bench/run_all.py --perf-table`` writes
``bench/results/perf-table.md``: the throughput table of ``bench/perf_table.py`` (collapse-lab against the
EKTF-equivalent per N and precision, docs/performance.md §3.1; about 20 min, so it is rerun only when
``perf-table.json`` is missing or with ``--rerun-throughput``) followed by the goals of the performance issue
(``bench/perf_goals.py``), whose measurements run when their JSON is missing or with ``--rerun-goals``:
``epoch-share.json`` (bench_epoch_share.py, ~3 min), ``spectral-stream.json`` (bench_spectral.py --only stream,
~2 min), ``mmap-rss.json`` (bench_mmap_rss.py: writes and deletes ~7 GB under ``--workdir``, ~5 min).

The full set takes tens of minutes on 2 CPU cores (the 10M-row prepare, the 4M x 16 spectra, the KDEF
throughput for N in {1, 2, 4, 10} and the cost of spectra during training on ML-100K at N = 1 and 3);
``--quick`` runs reduced sizes to check that everything works. Speed figures are ratios measured within one
process (see each script).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def perf_table(args: argparse.Namespace) -> int:
    """Throughput table (kept unless missing or --rerun-throughput) + goal measurements + the goals section."""
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    work = ["--workdir", args.workdir] if args.workdir else []
    quick = args.quick
    jobs = {
        "perf-table.json": ([py, str(HERE / "perf_table.py"), "--out-dir", str(out)]
                            + (["--students", "1,2", "--batch-size", "256", "--hidden", "32,32", "--cell-seconds",
                                "0.5", "--peak-size", "256", "--ektf", "off"] if quick else []), args.rerun_throughput),
        "epoch-share.json": ([py, str(HERE / "bench_epoch_share.py"), "--json-out", str(out / "epoch-share.json")]
                             + (["--synthetic-rows", "20000", "--hidden", "32", "--ml100k", ""] if quick else []),
                             args.rerun_goals),
        "spectral-stream.json": ([py, str(HERE / "bench_spectral.py"), "--only", "stream", "--threads", "1",
                                  "--json-out", str(out / "spectral-stream.json"), *work]
                                 + (["--stream-rows", "200000", "--repeat", "1"] if quick else []), args.rerun_goals),
        "mmap-rss.json": ([py, str(HERE / "bench_mmap_rss.py"), "--json-out", str(out / "mmap-rss.json"), *work]
                          + (["--rows", "100000", "--fields", "6", "--max-steps", "3", "--hidden", "16"]
                             if quick else []), args.rerun_goals),
    }
    failed = []
    for name, (argv, rerun) in jobs.items():
        if (out / name).exists() and not rerun:
            print(f"== {name}: kept (rerun with --rerun-{'throughput' if name == 'perf-table.json' else 'goals'})",
                  flush=True)
            continue
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        if subprocess.call(argv) != 0:
            failed.append(name)
    sys.path.insert(0, str(HERE))
    import perf_goals
    import perf_table

    info = json.loads((out / "perf-table.json").read_text())
    text = perf_table.markdown(info) + "\n" + perf_goals.goals_markdown(out)
    (out / "perf-table.md").write_text(text)
    print(text)
    if failed:
        print(f"measurements failed: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--perf-table", action="store_true",
                        help="only bench/perf_table.py -> bench/results/perf-table.{md,json}")
    parser.add_argument("--rerun-throughput", action="store_true", help="with --perf-table: rerun perf_table.py")
    parser.add_argument("--rerun-goals", action="store_true", help="with --perf-table: rerun the goal measurements")
    parser.add_argument("--workdir", default=None, help="with --perf-table: where the Criteo-sized data is written")
    args = parser.parse_args()
    if args.perf_table:
        sys.exit(perf_table(args))
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
