"""Spectral benchmark: speed, accuracy and memory of the streaming spectra (docs/metrics.md §8, docs/performance.md §5).

Four cases (``--only`` picks some; the default runs the first three):

* ``table`` — one ``--table-rows`` × ``--dim`` float32 table (default 4M × 16): the float64 chunked Gram vs
  TSQR (exact) in memory, their agreement on a table with σ spread over [1, 1e-4] (max relative error of σ,
  Δ effective rank, Δ IA against TSQR), and the whole per-field ``analyze()`` of a ``.safetensors``
  checkpoint holding the table (target: < 1 s on a 2-core CPU).
* ``criteo`` — ``--criteo-fields`` tables of ``--criteo-rows`` rows (default 39 × 1M × 16, a 2.5 GB
  ``.safetensors``) analysed per field in a fresh child process: wall time and peak memory (anonymous =
  what the analysis allocates, file-backed = pages of the memory-mapped checkpoint, reclaimable).
* ``activations`` — a ``--act-rows`` × ``--act-cols`` float32 ``.npy`` on disk (default 45M × 400 = 72 GB;
  scale the rows down with the flag) streamed, centered, in a fresh child: wall time, rows/s, peak memory.
* ``stream`` — a ``--stream-rows`` × ``--dim`` float32 ``.npy`` (default 45M × 16, 2.7 GiB) memory-mapped and
  streamed through the float64 Gram, its GFLOP/s (2·rows·dim²/s) against the float64 GEMM rate measured in
  the same process: square 2048³ and the Gram's own chunk shape (goal: ≥ 80%, docs/performance.md §5).

Inputs are written under ``--workdir`` (default a temporary directory, removed afterwards). Not a test: the
numbers depend on the machine and its load.

Usage::

    python bench/bench_spectral.py --only table
    python bench/bench_spectral.py --criteo-rows 100000 --act-rows 2000000 --json-out bench/results/spectral.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class MemorySampler:
    """Peak RssAnon / RssFile / VmHWM of this process, sampled from /proc/self/status every 10 ms (Linux)."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            text = Path("/proc/self/status").read_text()
        except OSError:
            return
        for line in text.splitlines():
            key = line.split(":")[0]
            if key in self.peak:
                self.peak[key] = max(self.peak[key], int(line.split()[1]) * 1024)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def mib(self) -> Dict[str, float]:
        return {k: round(v / 2**20, 1) for k, v in self.peak.items()}


def best_of(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def with_spectrum(rows: int, sigma: np.ndarray, seed: int) -> np.ndarray:
    """A float32 rows×K table U diag(σ) Vᵀ (U built chunkwise from Gaussian columns, orthonormal up to O(1/√n))."""
    rng = np.random.default_rng(seed)
    k = sigma.size
    v, _ = np.linalg.qr(rng.standard_normal((k, k)))
    u = rng.standard_normal((rows, k), dtype=np.float32) / np.float32(np.sqrt(rows))
    return (u * sigma.astype(np.float32)) @ v.T.astype(np.float32)


def bench_table(args: argparse.Namespace, workdir: Path) -> Dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    from collapse_lab.spectral import analyze
    from collapse_lab.spectral import functional as F
    from collapse_lab.spectral.streaming import matrix_spectrum

    n, d = args.table_rows, args.dim
    table = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    out: Dict[str, Any] = {"shape": [n, d]}
    matrix_spectrum(table[:100_000])  # warm-up (imports, BLAS threads)
    out["gram64_s"] = best_of(lambda: matrix_spectrum(table, auto_exact=False), args.repeat)
    out["tsqr_s"] = best_of(lambda: matrix_spectrum(table, exact=True), 1)
    ill = with_spectrum(n, np.logspace(0, -4, d), seed=1)  # σ ∈ [1, 1e-4]
    g, t = matrix_spectrum(ill, auto_exact=False), matrix_spectrum(ill, exact=True)
    out["ill_conditioned"] = {
        "max_rel_err_sigma": float(np.max(np.abs(g.sigma / t.sigma - 1))),
        "delta_erank": F.effective_rank(g.sigma) - F.effective_rank(t.sigma),
        "delta_ia": F.information_abundance(g.sigma) - F.information_abundance(t.sigma),
        "gram_resolution_floor_rel": g.resolution_floor / g.sigma[0],
    }
    path = workdir / "table.safetensors"
    save_file({"embedding.tables.big.weight": torch.from_numpy(table)}, str(path))
    analyze(path, targets="embeddings", progress=False)  # warm: imports, cached baselines
    out["analyze_per_field_s"] = best_of(lambda: analyze(path, targets="embeddings", progress=False), args.repeat)
    out["target_s"] = 1.0
    return out


def child_measure(path: str, targets: str) -> None:
    """Run analyze() in this (fresh) process and print wall time and peak memory as JSON."""
    from collapse_lab.spectral import analyze

    analyze_kwargs = {"targets": targets, "progress": False}
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        df = analyze(path, **analyze_kwargs)
        wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "memory_mib": mem.mib(), "matrices": int(df["name"].nunique())}))


def run_child(*argv: str) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_criteo(args: argparse.Namespace, workdir: Path) -> Dict[str, Any]:
    path = workdir / "criteo.safetensors"
    code = ("import torch, sys\nfrom safetensors.torch import save_file\ng = torch.Generator().manual_seed(0)\n"
            f"save_file({{f'embedding.tables.C{{i}}.weight': torch.randn({args.criteo_rows}, {args.dim}, generator=g)"
            f" for i in range({args.criteo_fields})}}, {str(path)!r})\n")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    out = {"fields": args.criteo_fields, "rows_per_field": args.criteo_rows, "dim": args.dim,
           "file_gib": round(path.stat().st_size / 2**30, 2), "write_s": round(time.perf_counter() - t0, 1)}
    out.update(run_child("_measure", str(path), "embeddings"))
    path.unlink()
    return out


def bench_activations(args: argparse.Namespace, workdir: Path) -> Dict[str, Any]:
    path = workdir / "activations.npy"
    rows, cols = args.act_rows, args.act_cols
    t0 = time.perf_counter()
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
    rng = np.random.default_rng(0)
    step = max(1, (1 << 24) // cols)
    for a in range(0, rows, step):  # chunkwise, so writing stays memory-bounded too
        b = min(rows, a + step)
        arr[a:b] = np.maximum(rng.standard_normal((b - a, cols), dtype=np.float32), 0)
    arr.flush()
    del arr
    out = {"shape": [rows, cols], "file_gib": round(path.stat().st_size / 2**30, 2),
           "write_s": round(time.perf_counter() - t0, 1)}
    out.update(run_child("_measure", str(path), "activations"))
    out["rows_per_s"] = round(rows / out["wall_s"])
    path.unlink()
    return out


def f64_gemm_rates(dim: int, chunk_rows: int, repeat: int) -> Dict[str, float]:
    """float64 GEMM GFLOP/s in this process with numpy's BLAS (the library the Gram uses): a square 2048^3
    product, and the Gram's own shape (chunk_rows x dim)^T (chunk_rows x dim) on an in-cache chunk."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048))
    square = 2 * 2048**3 / best_of(lambda: a @ a, repeat) / 1e9
    x = rng.standard_normal((chunk_rows, dim))
    inner = 50
    same_shape = 2 * chunk_rows * dim * dim * inner / best_of(lambda: [x.T @ x for _ in range(inner)], repeat) / 1e9
    return {"square_2048": square, f"gram_{chunk_rows}x{dim}": same_shape}


def bench_stream(args: argparse.Namespace, workdir: Path) -> Dict[str, Any]:
    """A ``--stream-rows`` x ``--dim`` float32 table (memory-mapped .npy) streamed through the float64 Gram, against
    the float64 GEMM rate measured in the same process (before and after; the higher is used):

        rate = 2 * rows * dim^2 / wall seconds   (the Gram's GEMM FLOPs, counted as a GEMM: x^T x)
    """
    from collapse_lab.spectral.accumulator import default_chunk_rows
    from collapse_lab.spectral.streaming import matrix_spectrum

    rows, d = args.stream_rows, args.dim
    path = workdir / "stream.npy"
    t0 = time.perf_counter()
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, d))
    rng = np.random.default_rng(0)
    for a in range(0, rows, 1 << 22):
        b = min(rows, a + (1 << 22))
        arr[a:b] = rng.standard_normal((b - a, d), dtype=np.float32)
    arr.flush()
    del arr
    out: Dict[str, Any] = {"shape": [rows, d], "file_gib": round(path.stat().st_size / 2**30, 2),
                           "write_s": round(time.perf_counter() - t0, 1)}
    chunk = default_chunk_rows(d)
    table = np.load(path, mmap_mode="r")
    before = f64_gemm_rates(d, chunk, args.repeat)
    matrix_spectrum(table[: 4 * chunk], auto_exact=False)  # warm-up
    walls = []
    for _ in range(max(1, args.stream_repeat)):  # the first pass may read from disk; later ones from page cache
        t0 = time.perf_counter()
        spec = matrix_spectrum(table, auto_exact=False, progress=False)
        walls.append(time.perf_counter() - t0)
    after = f64_gemm_rates(d, chunk, args.repeat)
    peak = {k: max(before[k], after[k]) for k in before}
    wall = min(walls)
    rate = 2 * rows * d * d / wall / 1e9
    out.update({"chunk_rows": chunk, "walls_s": walls, "wall_s": wall, "gflop_per_s": rate,
                "f64_gemm_gflop_per_s_before": before, "f64_gemm_gflop_per_s_after": after,
                "fraction_of_square_f64_gemm": rate / peak["square_2048"],
                "fraction_of_same_shape_f64_gemm": rate / peak[f"gram_{chunk}x{d}"],
                "sigma_max": float(spec.sigma[0]), "rows_per_s": rows / wall})
    del table
    path.unlink()
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        child_measure(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="table,criteo,activations", help="any of table,criteo,activations,stream")
    p.add_argument("--table-rows", type=int, default=4_000_000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--criteo-fields", type=int, default=39)
    p.add_argument("--criteo-rows", type=int, default=1_000_000)
    p.add_argument("--act-rows", type=int, default=45_000_000)
    p.add_argument("--act-cols", type=int, default=400)
    p.add_argument("--stream-rows", type=int, default=45_000_000, help="rows of the streamed table (case stream)")
    p.add_argument("--stream-repeat", type=int, default=2, help="passes over the streamed table (best kept)")
    p.add_argument("--threads", type=int, default=0, help="BLAS threads (threadpoolctl; 0 = the library default)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_spectral_", dir=args.workdir))
    cases = {"table": bench_table, "criteo": bench_criteo, "activations": bench_activations, "stream": bench_stream}
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    results: Dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "python": platform.python_version(), "numpy": np.__version__}}
    try:
        for name in args.only.split(","):
            results[name] = cases[name](args, workdir)
            print(name, json.dumps(results[name], indent=1), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
