"""Data-layer benchmark: prepare time and peak memory for a Criteo-like CSV, and batch-iterator throughput.

Writes a synthetic Criteo-layout CSV of ``--rows`` rows in total (8:1:1 train/valid/test files; columns
``label, I1..I13, C1..C26``; counts with 20% missing cells, Zipf-distributed categorical tokens over per-field
vocabularies from 10 to 2M), stream-written in chunks of ``--chunk-rows``; prepares it with the ``Criteo_x4``
preset (numeric fields bucketised, ``min_categr_count`` 10) in a child process and reports the child's wall
time and peak RSS (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``); then iterates one shuffled epoch of
the training split with ``BatchIterator(batch_size=4096)`` (with and without prefetch) and reports rows/s.
Not a test: the numbers depend on the machine.

Usage::

    python bench/bench_data.py                      # 10M rows (needs ~6 GB of disk under --workdir)
    python bench/bench_data.py --rows 200000 --json-out bench/results/data.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INTS = [f"I{i}" for i in range(1, 14)]
CATS = [f"C{i}" for i in range(1, 27)]


def write_csv(path: Path, rows: int, seed: int, chunk_rows: int) -> float:
    """Stream-write ``rows`` Criteo-like rows with pyarrow, one chunk at a time; returns seconds."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    vocab = np.round(np.exp(np.linspace(np.log(10), np.log(2_000_000), len(CATS)))).astype(np.int64)
    rng.shuffle(vocab)
    schema = pa.schema([("label", pa.int8())] + [(c, pa.int64()) for c in INTS] + [(c, pa.string()) for c in CATS])
    with pacsv.CSVWriter(str(path), schema) as writer:
        for start in range(0, rows, chunk_rows):
            n = min(chunk_rows, rows - start)
            cols = [pa.array(rng.random(n) < 0.25, type=pa.bool_()).cast(pa.int8())]
            for j in range(len(INTS)):
                x = np.floor(rng.lognormal(1.0 + 0.2 * j, 1.5, n)).astype(np.int64)
                cols.append(pa.array(x, mask=rng.random(n) < 0.2))
            for j, v in enumerate(vocab):
                ranks = (rng.zipf(1.15, n) - 1) % v
                tokens = (ranks * 2654435761 + 97 * j) % (1 << 32)
                cols.append(pa.array(tokens).cast(pa.string()))
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
    return time.perf_counter() - t0


def child_prepare(spec_json: str, out: str) -> None:
    """Runs in the child process: prepare the spec (the parent measures time and peak RSS)."""
    from collapse_lab.data.prepare import prepare_spec
    from collapse_lab.data.spec import spec_from_dict

    spec = spec_from_dict(json.loads(spec_json), source="bench")
    prepare_spec(spec, out, overwrite=True, progress=False)


def iterate(out: Path, batch_size: int, prefetch: int) -> float:
    import torch  # noqa: F401  (imported before timing)

    from collapse_lab.data.dataset import BatchIterator, ProcessedDataset

    split = ProcessedDataset(out).split("train")
    it = BatchIterator(split, batch_size, shuffle=True, seed=0, prefetch=prefetch)
    np.asarray(split.ids).sum()  # warm the page cache: measure the iterator, not the disk
    t0 = time.perf_counter()
    rows = sum(len(b) for b in it)
    return rows / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000, help="total rows, split 8:1:1 into train/valid/test")
    p.add_argument("--chunk-rows", type=int, default=500_000)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--workdir", type=Path, default=None, help="folder for the CSV and dataset (default: temp)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--child-prepare", nargs=2, metavar=("SPEC_JSON", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_prepare:
        child_prepare(*args.child_prepare)
        return {}

    import yaml

    work = Path(args.workdir or tempfile.mkdtemp(prefix="collapse-bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        n_valid = max(args.rows // 10, 1)
        sizes = {"train": args.rows - 2 * n_valid, "valid": n_valid, "test": n_valid}
        write_s = 0.0
        for k, (split, n) in enumerate(sizes.items()):
            write_s += write_csv(work / f"{split}.csv", n, args.seed + k, args.chunk_rows)
        csv_bytes = sum((work / f"{s}.csv").stat().st_size for s in sizes)
        spec = yaml.safe_load((ROOT / "configs" / "data" / "Criteo_x4.yaml").read_text())["Criteo_x4"]
        spec.update({"dataset_id": "bench_criteo", "train_data": str(work / "train.csv"),
                     "valid_data": str(work / "valid.csv"), "test_data": str(work / "test.csv")})
        out = work / "processed"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--child-prepare", json.dumps(spec), str(out)], check=True)
        prepare_s = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        meta = json.loads((out / "meta.json").read_text())
        fmap = json.loads((out / "feature_map.json").read_text())
        result = {
            "rows": sum(meta["rows"].values()), "rows_per_split": meta["rows"], "csv_bytes": csv_bytes,
            "processed_bytes": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
            "total_features": fmap["total_features"], "write_csv_s": round(write_s, 2),
            "prepare_s": round(prepare_s, 2), "prepare_rows_per_s": round(sum(meta["rows"].values()) / prepare_s),
            "prepare_peak_rss_mib": round(peak_kib / 1024, 1),
            "batch_rows_per_s": round(iterate(out, args.batch_size, 0)),
            "batch_rows_per_s_prefetch2": round(iterate(out, args.batch_size, 2)),
            "batch_size": args.batch_size, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                       "platform": platform.platform()},
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
