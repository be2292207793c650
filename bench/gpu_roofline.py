"""bf16 training throughput against the bf16 GEMM roofline, for the GPU check (docs/performance.md §6).

For every N in ``--students`` (default 1, 4, 16): the §1 workload (synthetic, 24 fields x d = 16, 1,000 ids per
field, students [400]*3 with BatchNorm and dropout 0.1, B = 4096, KDEF, clipping, Adam) in the setup built for a
GPU — the batched student form, ``precision=bf16`` (collapse_lab/training/precision.py), the students' forward
compiled (``compile``, collapse_lab/training/compiling.py) and the training split resident on the device
(``data_on_device``: batches sliced there) — timed over ``--steps`` steps after ``--warmup`` (which absorb the
compilation), with one device synchronisation before and after the timed steps only:

    samples/s         = B * steps / seconds
    GFLOP/s           = 6 * B * N * W / seconds-per-step   (W = weights of one student's Linear layers)
    fraction of peak  = GFLOP/s / bf16 GEMM peak (torch.matmul of size^3 bf16 matrices on the device, measured in
                        this process before and after the runs; the higher is used)

The goal of the performance issue is >= 2M samples/s at N = 16 on one H200. ``--device cpu`` with tiny sizes
checks the script (tests/test_bench_gpu_check.py).

Usage: ``python bench/gpu_roofline.py --device cuda --json-out $OUT/roofline-cuda.json`` (bench/gpu_check.sh);
smoke: ``--device cpu --students 1,2 --batch-size 64 --hidden 16,16 --steps 2 --warmup 1 --peak-size 128
--compile off``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

from collapse_lab.io.atomic import atomic_write_json

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
GOAL_SAMPLES_PER_S = 2_000_000  # at N = 16 on one H200


def bf16_peak(device: str, size: int, repeats: int = 5) -> float:
    """Best bf16 ``torch.matmul`` GFLOP/s of a size^3 product on ``device``."""
    import torch
    from bench_train import matmul_gflops

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    inner = max(1, min(200, int(2e12 // (2 * size**3)) if device != "cpu" else int(2e9 // (2 * size**3))))
    return matmul_gflops(a, b, inner, repeats)


def endless(batches: Any) -> Iterator[Any]:
    """The iterator's batches epoch after epoch (a new epoch never falls inside the timed steps by default)."""
    epoch = 0
    while True:
        batches.set_epoch(epoch)
        yield from batches
        epoch += 1


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import torch
    from bench_train import _sync, student_weights

    from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
    from collapse_lab.data.synthetic import make_synthetic
    from collapse_lab.models import build_ensemble
    from collapse_lab.strategies import build_strategy
    from collapse_lab.training.compiling import compile_students, compile_support
    from collapse_lab.training.precision import install_precision, resolve_precision
    from collapse_lab.training.trainer import training_step

    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    hidden = [int(h) for h in args.hidden.split(",")]
    precision, precision_note = resolve_precision("bf16", device)
    use_compile = {"on": True, "off": False, "auto": compile_support(device) is None}[args.compile]
    peak_before = bf16_peak(device, args.peak_size)
    rows = int(args.batch_size * (args.warmup + args.steps + 2) / 0.8)
    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = make_synthetic(Path(tmp) / "data", rows=rows, fields=args.fields, vocab_size=args.vocab, seed=1)
        split = ProcessedDataset(path).split("train")
        for n in [int(x) for x in args.students.split(",")]:
            torch.manual_seed(0)
            model = build_ensemble(ProcessedDataset(path).feature_map, num_students=n, embedding_dim=16,
                                   hidden_units=hidden, net_dropout=0.1, fusion="mean", form="batched",
                                   seed=2024).to(device)
            install_precision(model, precision, device)
            note = compile_students(model, device) if use_compile else None
            task = build_strategy("kdef", num_students=n).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            gpu = device != "cpu"
            batches = BatchIterator(split, args.batch_size, shuffle=True, drop_last=True,
                                    device=device if gpu else None, resident=gpu)
            stream = endless(batches)
            next_batch = stream.__next__
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                training_step(model, task, opt, next_batch(), 1e-5, 10.0)
            _sync(device)
            warmup_s = time.perf_counter() - t0
            timed = [next_batch() for _ in range(args.steps)]  # already on the device: only the steps are timed
            _sync(device)
            t0 = time.perf_counter()
            for batch in timed:
                parts = training_step(model, task, opt, batch, 1e-5, 10.0)
            _sync(device)
            per_step = (time.perf_counter() - t0) / args.steps
            w = student_weights(model)
            gflops = 6 * args.batch_size * n * w / per_step / 1e9
            row = {"n": n, "samples_per_s": args.batch_size / per_step, "step_s": per_step, "gflop_per_s": gflops,
                   "weights_per_student": w, "warmup_s": warmup_s, "compiled": use_compile and note is None,
                   "compile_note": note, "loss": float(parts["loss"])}
            results.append(row)
            print(f"N={n:<3} bf16 batched{' compiled' if row['compiled'] else ''}: {row['samples_per_s']:>12,.0f} "
                  f"samples/s  {gflops:9.1f} GFLOP/s  (warm-up {warmup_s:.1f} s)", flush=True)
            del model, task, opt, batches, stream, next_batch, timed
    peak_after = bf16_peak(device, args.peak_size)
    peak = max(peak_before, peak_after)
    for row in results:
        row["fraction_of_bf16_peak"] = row["gflop_per_s"] / peak
        print(f"N={row['n']:<3} {100 * row['fraction_of_bf16_peak']:5.1f}% of the bf16 GEMM peak "
              f"({peak:,.0f} GFLOP/s)", flush=True)
    info = {"device": device, "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
            "torch": torch.__version__, "precision": precision, "precision_note": precision_note,
            "form": "batched", "compile": use_compile, "data_on_device": device != "cpu",
            "batch_size": args.batch_size, "fields": args.fields, "hidden_units": hidden, "steps": args.steps,
            "bf16_peak_gflop_per_s": {"before": peak_before, "after": peak_after, "size": args.peak_size},
            "goal_samples_per_s_at_n16": GOAL_SAMPLES_PER_S, "rows": results}
    n16 = [r for r in results if r["n"] == 16]
    if n16:
        verdict = "met" if n16[0]["samples_per_s"] >= GOAL_SAMPLES_PER_S else "not met"
        info["goal_n16"] = verdict
        print(f"goal >= {GOAL_SAMPLES_PER_S:,} samples/s at N = 16: {verdict} "
              f"({n16[0]['samples_per_s']:,.0f})", flush=True)
    return info


def main(argv: List[str] | None = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda | cpu")
    p.add_argument("--students", default="1,4,16")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--fields", type=int, default=24)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--hidden", default="400,400,400")
    p.add_argument("--warmup", type=int, default=15, help="untimed steps (compilation happens here)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--peak-size", type=int, default=8192)
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    info = run(args)
    if args.json_out:
        atomic_write_json(args.json_out, info)
    return info


if __name__ == "__main__":
    main()
