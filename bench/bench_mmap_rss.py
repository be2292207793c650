"""Peak memory of a Criteo-sized training run on memory-mapped data (docs/performance.md §7).

Writes a synthetic dataset in the project's processed format (docs/data.md: ``feature_map.json``, ``meta.json``,
``{train,valid,test}/ids.npy`` int32 (rows, C) and ``labels.npy`` float32) of ``--rows`` rows x ``--fields``
categorical fields (default 45M x 39, Criteo's shape: about 7 GB on disk) chunk by chunk, never holding more than
one chunk in memory; trains it with ``collapse-lab train --threads 1`` for ``--max-steps`` steps in a child
process, and reports that process's peak memory against the size of the data on disk:

    VmHWM   = peak resident set (anonymous + file-backed pages, = ru_maxrss of the child)
    RssAnon = peak anonymous memory (what the process allocated: model, Adam, the epoch's permutation, batches)
    RssFile = peak file-backed resident pages (pages of the memory-mapped arrays the batches touched; clean page
              cache, dropped by the kernel under pressure)

The point: RssAnon stays far below the data size (the data is memory-mapped, not loaded). Ids are uniform in
1..``--vocab`` per field, labels Bernoulli(0.25) (the run's AUC is meaningless; only memory is measured). The
dataset is deleted afterwards unless ``--keep``.

Usage: ``python bench/bench_mmap_rss.py --workdir /work/scratch --json-out bench/results/mmap-rss.json``; smoke:
``--rows 200000 --fields 6 --max-steps 5 --hidden 16``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from collapse_lab.io.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1_000_000


def write_dataset(root: Path, rows: int, fields: int, vocab: int, seed: int = 7) -> Dict[str, int]:
    """The processed dataset, split 98/1/1 by position; returns bytes on disk per split."""
    from collapse_lab.data.feature_map import FeatureMap, FieldInfo
    from collapse_lab.data.meta import build_meta

    held = max(1, rows // 100)
    sizes = {"train": rows - 2 * held, "valid": held, "test": held}
    rng = np.random.default_rng(seed)
    on_disk = {}
    for name, n in sizes.items():
        d = root / name
        d.mkdir(parents=True)
        ids = np.lib.format.open_memmap(d / "ids.npy", mode="w+", dtype=np.int32, shape=(n, fields))
        labels = np.lib.format.open_memmap(d / "labels.npy", mode="w+", dtype=np.float32, shape=(n,))
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            ids[a:b] = rng.integers(1, vocab + 1, size=(b - a, fields), dtype=np.int32)
            labels[a:b] = rng.random(b - a, dtype=np.float32) < 0.25
        ids.flush()
        labels.flush()
        del ids, labels
        on_disk[name] = sum(f.stat().st_size for f in d.iterdir())
    names = [f"C{j + 1}" for j in range(fields)]
    FeatureMap(dataset_id="criteo-sized", label_col="label", fields=[
        FieldInfo(name=c, type="categorical", column=j, width=1, vocab_size=vocab + 2, padding_idx=0,
                  oov_idx=vocab + 1) for j, c in enumerate(names)]).save(root / "feature_map.json")
    meta = build_meta("criteo-sized", "synthetic-uniform", f"uniform-{rows}-{fields}-{vocab}-{seed}", sizes,
                      {k: 0.25 for k in sizes})
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    return on_disk


def peak_memory(pid: int, stop: threading.Event, peak: Dict[str, int], timeline: List[List[float]]) -> None:
    """Sample /proc/<pid>/status every 20 ms into ``peak`` (bytes); every 0.5 s append
    ``[seconds, RssAnon MiB, RssFile MiB]`` to ``timeline``."""
    status = Path(f"/proc/{pid}/status")
    t0 = last = time.perf_counter()
    while not stop.wait(0.02):
        try:
            text = status.read_text()
        except OSError:
            return
        now = {}
        for line in text.splitlines():
            key = line.split(":")[0]
            if key in peak:
                now[key] = int(line.split()[1]) * 1024
                peak[key] = max(peak[key], now[key])
        if time.perf_counter() - last >= 0.5 and now:
            last = time.perf_counter()
            timeline.append([round(last - t0, 1), round(now.get("RssAnon", 0) / 2**20),
                             round(now.get("RssFile", 0) / 2**20)])


def main(argv: List[str] | None = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=45_000_000)
    p.add_argument("--fields", type=int, default=39)
    p.add_argument("--vocab", type=int, default=20_000, help="ids per field")
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--students", type=int, default=1)
    p.add_argument("--hidden", default="400,400,400")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--workdir", type=Path, default=None, help="where the dataset goes (default: the temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the dataset")
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="mmap-rss-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        on_disk = write_dataset(tmp / "data", args.rows, args.fields, args.vocab)
        write_s = time.perf_counter() - t0
        total = sum(on_disk.values())
        print(f"wrote {args.rows:,} x {args.fields} ({total / 2**30:.2f} GiB) in {write_s:.0f} s", file=sys.stderr)
        cmd = [sys.executable, "-m", "collapse_lab", "train", f"dataset={tmp / 'data'}", "method=kdef",
               f"n={args.students}", f"hidden_units=[{args.hidden}]", f"batch_size={args.batch_size}",
               f"max_steps={args.max_steps}", "--threads", "1", "--out", str(tmp / "run"), "--device", "cpu"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
        timeline: List[List[float]] = []
        stop = threading.Event()
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = threading.Thread(target=peak_memory, args=(child.pid, stop, peak, timeline), daemon=True)
        sampler.start()
        log, _ = child.communicate()
        stop.set()
        sampler.join()
        train_s = time.perf_counter() - t0
        if child.returncode != 0:
            sys.exit(f"training failed ({child.returncode}):\n{log[-3000:]}")
        manifest = json.loads((tmp / "run" / "manifest.json").read_text())
        info = {"rows": args.rows, "fields": args.fields, "vocab_per_field": args.vocab,
                "data_bytes_on_disk": total, "data_bytes_per_split": on_disk, "write_s": write_s,
                "max_steps": args.max_steps, "batch_size": args.batch_size, "students": args.students,
                "hidden_units": args.hidden, "threads": 1, "train_wall_s": train_s,
                "train_samples_per_s": manifest["timing"]["train_samples_per_s"],
                "peak_bytes": peak, "peak_over_data": {k: v / total for k, v in peak.items()},
                "command": " ".join(cmd[1:]), "timeline_s_anon_mib_file_mib": timeline,
                "train_log": (tmp / "run" / "train.log").read_text().splitlines()[-12:]}
        gib = {k: f"{v / 2**30:.2f} GiB ({100 * v / total:.1f}% of the data)" for k, v in peak.items()}
        print(f"peak VmHWM {gib['VmHWM']}, RssAnon {gib['RssAnon']}, RssFile {gib['RssFile']}; "
              f"training {train_s:.0f} s", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json_out:
        atomic_write_json(args.json_out, info)
    return info


if __name__ == "__main__":
    main()
