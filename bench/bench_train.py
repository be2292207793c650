"""Training benchmarks: KDEF throughput against the fp32 GEMM peak, and ML-100K AUC of vanilla-mean vs KDEF.

**Throughput** (default mode). A synthetic dataset shaped like ``docs/performance.md`` §1 (24 categorical fields,
d = 16, students MLP 384 -> 400 -> 400 -> 400 -> 1, batch 4096) is generated with
:func:`collapse_lab.data.synthetic.make_synthetic`; for every N in ``--students`` and every form in ``--forms``
(loop, batched) the real training step (:func:`collapse_lab.training.trainer.training_step`: forward, KDEF loss,
embedding L2, backward, clipping, Adam) runs ``--steps`` timed steps after ``--warmup`` steps. Reported:

    samples/s   = B * steps / seconds
    GFLOP/s     = 6 * B * N * W / seconds-per-step        (W = weights of one student's Linear layers;
                                                           2W forward + 4W backward FLOPs per sample)
    % of peak   = GFLOP/s / fp32 GEMM peak, the peak measured in the same process with torch.matmul at the
                  MLP's shape (4096 x 400 @ 400 x 400) and at 2048 x 2048 @ 2048 x 2048 (best of repeats)

**ML-100K seeds** (``--ml100k-seeds K``). Trains vanilla (mean fusion) and KDEF at N in ``--ml-students``
(default 1, 4) with seeds 1..K on ``movielens-100k`` (prepare it first: ``collapse-lab data fetch
movielens-100k && collapse-lab data prepare movielens-100k``) with the paper's schedule, and reports the
test ensemble AUC per (method, N): mean, std (ddof 1), min, max, plus best-student AUC and spread.

**Spectra overhead** (``--spectra-overhead N1,N2``). Trains ``--dataset`` (default ML-100K, the preset's shapes:
hidden [400, 400, 400], batch 4096) with spectra during training at the default cadence (``spectra_every=1``,
``spectra_unit=epoch``: step 0, every epoch end, the last step; or what ``--set`` says) and times, in the same
process, every call that computes the trace against the whole ``train()`` call::

    overhead = seconds in SpectraTrace.record / (seconds of train() − seconds in SpectraTrace.record)

The first record of each matrix shape includes drawing its Gaussian baselines (about 1.5 s for the ML-100K
shapes on a 2-core CPU); they are cached for the rest of the process, so a later N in the same call pays less.

Not a test: the numbers depend on the machine. Examples::

    python bench/bench_train.py                                   # N = 1, 2, 4, 10; loop and batched
    python bench/bench_train.py --students 1,2 --steps 3 --warmup 1 --rows 20000 --hidden 64,64   # smoke
    python bench/bench_train.py --ml100k-seeds 5 --json-out bench/results/train_ml100k.json
    python bench/bench_train.py --spectra-overhead 1,3 --json-out bench/results/spectra-overhead.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def gemm_peak(device: str, repeats: int = 5) -> Dict[str, float]:
    """Best fp32 ``torch.matmul`` GFLOP/s at the MLP shape and at 2048^2 (same process, same threads)."""
    import torch

    out = {}
    for name, (m, k, n) in {"mlp_4096x400x400": (4096, 400, 400), "square_2048": (2048, 2048, 2048)}.items():
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        out[name] = matmul_gflops(a, b, inner=max(1, int(2e10 // (2 * m * k * n))), repeats=repeats)  # ~20 GFLOP
    return out


def matmul_gflops(a: Any, b: Any, inner: int, repeats: int = 5) -> float:
    """Best GFLOP/s of ``torch.matmul(a, b)`` over ``repeats`` timings of ``inner`` products (after a warm-up),
    synchronising the device around each timing."""
    import torch

    m, k = a.shape
    n = b.shape[1]
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(a.device)
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b)
        _sync(a.device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * m * k * n / best / 1e9


def student_weights(model: Any) -> int:
    """W: weights of one student's Linear layers (hidden layers + head), from the model description."""
    desc = model.describe()
    hidden = [layer["shape"] for layer in desc["hidden_layers"] if layer["member"] == 0]
    head_in = hidden[-1][0] if hidden else desc["input_dim"]
    return sum(r * c for r, c in hidden) + head_in


def throughput(args: argparse.Namespace) -> Dict[str, Any]:
    import torch

    from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
    from collapse_lab.data.synthetic import make_synthetic
    from collapse_lab.models import build_ensemble
    from collapse_lab.strategies import build_strategy
    from collapse_lab.training.api import resolve_device
    from collapse_lab.training.trainer import training_step

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device == "cpu":
        torch.set_flush_denormal(True)
    hidden = [int(h) for h in args.hidden.split(",")]
    steps_needed = args.warmup + args.steps
    rows = max(args.rows, int(args.batch_size * steps_needed / 0.8) + args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating {rows:,} synthetic rows x {args.fields} fields ...", file=sys.stderr)
        path = make_synthetic(Path(tmp) / "bench", rows=rows, fields=args.fields, vocab_size=args.vocab, seed=1)
        data = ProcessedDataset(path)
        train_split = data.split("train")
        peak = gemm_peak(device)
        print(f"fp32 GEMM peak: {peak}", file=sys.stderr)
        results: List[Dict[str, Any]] = []
        for form in args.forms.split(","):
            for n in [int(x) for x in args.students.split(",")]:
                torch.manual_seed(0)
                model = build_ensemble(data.feature_map, num_students=n, embedding_dim=args.embedding_dim,
                                       hidden_units=hidden, net_dropout=0.1, fusion="mean", form=form,
                                       seed=2024).to(device)
                task = build_strategy("kdef", num_students=n).to(device)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                batches = iter(BatchIterator(train_split, args.batch_size, shuffle=True, drop_last=True,
                                             device=None if device == "cpu" else device,
                                             prefetch=0 if device == "cpu" else 2))
                for _ in range(args.warmup):
                    training_step(model, task, opt, next(batches), 1e-5, 10.0)
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    training_step(model, task, opt, next(batches), 1e-5, 10.0)
                _sync(device)
                per_step = (time.perf_counter() - t0) / args.steps
                w = student_weights(model)
                gflops = 6 * args.batch_size * n * w / per_step / 1e9
                row = {"form": form, "n": n, "samples_per_s": args.batch_size / per_step, "ms_per_step": 1e3 * per_step,
                       "weights_per_student": w, "gflop_per_s": gflops,
                       "fraction_of_mlp_gemm_peak": gflops / peak["mlp_4096x400x400"],
                       "fraction_of_square_gemm_peak": gflops / peak["square_2048"]}
                results.append(row)
                print(f"{form:>8} N={n:<3} {row['samples_per_s']:>10,.0f} samples/s  {gflops:7.1f} GFLOP/s  "
                      f"{100 * row['fraction_of_mlp_gemm_peak']:5.1f}% of MLP-shape peak", file=sys.stderr)
                del model, task, opt, batches
    return {"mode": "throughput", "device": device, "threads": torch.get_num_threads(), "batch_size": args.batch_size,
            "fields": args.fields, "embedding_dim": args.embedding_dim, "hidden_units": hidden, "method": "kdef",
            "gemm_peak_gflop_per_s": peak, "results": results}


def _stats(values: Sequence[float]) -> Dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def ml100k_seeds(args: argparse.Namespace) -> Dict[str, Any]:
    from collapse_lab.training.api import train

    runs_root = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="bench_train_"))
    students = [int(x) for x in args.ml_students.split(",")]
    table: Dict[str, Any] = {}
    for method in ("vanilla", "kdef"):
        for n in students:
            aucs, best, spreads = [], [], []
            for seed in range(1, args.ml100k_seeds + 1):
                overrides = [f"dataset={args.dataset}", f"method={method}", "fusion=mean", f"n={n}", f"seed={seed}",
                             *args.set]
                out = runs_root / f"{method}-n{n}-s{seed}"
                result = train(overrides, out, overwrite=True, device=args.device, progress=False, console=False)
                s = result.summary
                aucs.append(s["ensemble_auc"])
                best.append(s["best_student_auc"])
                spreads.append(s["spread"])
                print(f"{method:>8} N={n} seed={seed}: test AUC {s['ensemble_auc']:.5f} (best student "
                      f"{s['best_student_auc']:.5f}, spread {s['spread']:.5f}, epochs {result.results['epochs_run']})",
                      file=sys.stderr)
            table[f"{method}-n{n}"] = {"method": method, "n": n, "seeds": args.ml100k_seeds,
                                       "test_auc": _stats(aucs), "best_student_auc": _stats(best),
                                       "spread": _stats(spreads), "aucs": aucs}
    for key, row in table.items():
        a = row["test_auc"]
        print(f"{key:>12}: test AUC mean {a['mean']:.5f} std {a['std']:.5f} min {a['min']:.5f} max {a['max']:.5f}")
    return {"mode": "ml100k_seeds", "dataset": args.dataset, "overrides": list(args.set), "runs_dir": str(runs_root),
            "results": table}


def spectra_overhead(args: argparse.Namespace) -> Dict[str, Any]:
    from collapse_lab.config import resolve_config
    from collapse_lab.training import spectra
    from collapse_lab.training.api import train

    spent = {"seconds": 0.0, "records": 0}
    original = spectra.SpectraTrace.record

    def timed(self: Any, model: Any, epoch: int, step: int) -> None:
        t0 = time.perf_counter()
        original(self, model, epoch, step)
        spent["seconds"] += time.perf_counter() - t0
        spent["records"] += 1

    runs_root = Path(args.runs_dir) if args.runs_dir else Path(tempfile.mkdtemp(prefix="bench_spectra_"))
    results: List[Dict[str, Any]] = []
    spectra.SpectraTrace.record = timed  # type: ignore[method-assign]
    try:
        for n in [int(x) for x in args.spectra_overhead.split(",")]:
            overrides = [f"dataset={args.dataset}", "method=kdef", f"n={n}", "seed=1", *args.set]
            cfg = resolve_config(overrides)
            spent.update(seconds=0.0, records=0)
            t0 = time.perf_counter()
            result = train(overrides, runs_root / f"kdef-n{n}", overwrite=True, device=args.device, progress=False,
                           console=False)
            wall = time.perf_counter() - t0
            rows = sum(1 for _ in open(result.run_dir / "spectra_trace.csv")) - 1
            row = {"n": n, "spectra_every": cfg.spectra_every, "spectra_unit": cfg.spectra_unit,
                   "batch_size": cfg.batch_size, "hidden_units": cfg.hidden_units,
                   "epochs": result.results["epochs_run"], "steps": result.results["steps_run"],
                   "records": spent["records"], "trace_rows": rows, "record_s": spent["seconds"],
                   "train_s": wall - spent["seconds"], "overhead": spent["seconds"] / (wall - spent["seconds"])}
            results.append(row)
            print(f"kdef N={n}: {row['epochs']} epochs, {row['steps']} steps, {row['records']} records "
                  f"({row['record_s']:.2f} s) in {row['train_s']:.1f} s of training: overhead "
                  f"{100 * row['overhead']:.2f}%", file=sys.stderr)
    finally:
        spectra.SpectraTrace.record = original  # type: ignore[method-assign]
    return {"mode": "spectra_overhead", "dataset": args.dataset, "overrides": list(args.set), "results": results}


def main(argv: Sequence[str] | None = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--students", default="1,2,4,10", help="N values for the throughput mode")
    p.add_argument("--forms", default="loop,batched", help="student forms to compare")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--fields", type=int, default=24)
    p.add_argument("--vocab", type=int, default=1000, help="ids per field of the synthetic data")
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--hidden", default="400,400,400")
    p.add_argument("--rows", type=int, default=200_000, help="synthetic rows (raised to cover the steps)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--ml100k-seeds", type=int, default=0, help="run the ML-100K comparison with this many seeds")
    p.add_argument("--ml-students", default="1,4", help="N values of the ML-100K comparison")
    p.add_argument("--dataset", default="movielens-100k", help="dataset of the seed comparison")
    p.add_argument("--set", nargs="*", default=[], help="extra config overrides key=value for the seed comparison")
    p.add_argument("--spectra-overhead", default="", metavar="N1,N2",
                   help="time spectra during training at these N (KDEF on --dataset) instead of throughput")
    p.add_argument("--runs-dir", default=None, help="keep the seed-comparison runs here (default: a temp dir)")
    p.add_argument("--json-out", default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.spectra_overhead:
        result = spectra_overhead(args)
    else:
        result = ml100k_seeds(args) if args.ml100k_seeds > 0 else throughput(args)
    result["host"] = {"platform": platform.platform(), "python": platform.python_version()}
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
