"""The performance table: collapse-lab's KDEF training step against the EKTF-equivalent, per N and precision.

For every N in ``--students`` (default 1, 2, 4, 10, 16) and precision in ``--precisions`` (fp32, bf16), in ONE
process and on the same batches (``bench/perf_workload.py``: ML-100K-shaped synthetic data, 8 fields, d = 16,
students [400]*3 with BatchNorm and dropout 0.1, B = 4096, KDEF loss, clipping, Adam):

- collapse-lab: :func:`collapse_lab.training.trainer.training_step` at that precision;
- the EKTF-equivalent (``bench/ektf_equivalent.py``: the authors' model from FuxiCTR 2.3.10's own layers,
  FuxiCTR's ``train_step``) in fp32, and in bf16 with the same autocast hooks;

the models of one N take turns, one step each, round after round (``--cell-seconds`` per (N, precision) cell;
interleaving spreads the load of a shared machine over all of them), and the median step time is kept:

    samples/s        = B / median step seconds
    ratio            = collapse-lab samples/s / EKTF-equivalent fp32 samples/s (same N, same process)
    GFLOP/s          = 6 * B * N * W / step seconds       (W = weights of one student's Linear layers)
    fraction of peak = GFLOP/s / square-GEMM peak of that precision (torch.matmul 2048^3, fp32 or bf16, measured
                       in this process at the start and at the end; the higher is used)

Writes ``<out-dir>/perf-table.md`` and ``.json`` with the machine (CPU model, cores, torch version, bf16 support,
load average at start and end). The EKTF-equivalent needs FuxiCTR's venv (``bash bench/fuxictr_baseline.sh``
builds ``bench/.venv-fuxictr``); without it (``--ektf off`` or no venv) its columns are empty.

Usage: ``python bench/perf_table.py`` (about 10 min on 2 cores) or ``python bench/run_all.py --perf-table``;
smoke: ``--students 1,2 --batch-size 256 --hidden 32,32 --cell-seconds 0.5``.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from collapse_lab.io.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def square_gemm_peak(dtype_name: str, size: int = 2048, repeats: int = 3) -> float:
    """Best torch.matmul GFLOP/s of a size^3 product in fp32 or bf16."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    inner = max(1, int(1e10 // (2 * size**3)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.matmul(a, b)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * size**3 / best / 1e9


def machine() -> Dict[str, Any]:
    import torch

    from collapse_lab.training.precision import bf16_support

    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16": bf16_support("cpu")[1],
            "python": platform.python_version(), "platform": platform.platform()}


def fuxictr_site(arg: str) -> str | None:
    if arg == "off":
        return None
    if arg != "auto":
        return arg
    found = sorted(glob.glob(str(HERE / ".venv-fuxictr" / "lib" / "python*" / "site-packages")))
    return found[0] if found else None


def measure(models: Dict[str, Any], seconds: float, min_rounds: int = 3) -> Dict[str, List[float]]:
    """Interleaved rounds of one step per model until ``seconds`` have passed (at least ``min_rounds``)."""
    times: Dict[str, List[float]] = {k: [] for k in models}
    for w in models.values():  # warm-up: first-touch allocations, oneDNN kernel creation
        w.step()
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or time.perf_counter() - start < seconds:
        for key, w in models.items():
            t0 = time.perf_counter()
            w.step()
            times[key].append(time.perf_counter() - t0)
        rounds += 1
    return times


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import torch
    from perf_workload import EMBEDDING_DIM, FIELDS, Workload, student_weights

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    hidden = [int(h) for h in args.hidden.split(",")]
    precisions = args.precisions.split(",")
    site = fuxictr_site(args.ektf)
    ektf_note = None
    if site is not None:
        sys.path.append(site)  # after collapse-lab's site-packages: the same torch and numpy
        try:
            import ektf_equivalent  # noqa: F401  (bench/ektf_equivalent.py; needs fuxictr)
        except ImportError as exc:
            site, ektf_note = None, f"EKTF-equivalent not measured: {exc}"
    else:
        ektf_note = "EKTF-equivalent not measured: no FuxiCTR venv (bash bench/fuxictr_baseline.sh builds it)"
    if ektf_note:
        print(ektf_note, file=sys.stderr)
    info = {"machine": machine(), "load_average_start": list(os.getloadavg())}
    peak = {p: square_gemm_peak(p, args.peak_size) for p in ("fp32", "bf16")}
    w = student_weights(FIELDS, EMBEDDING_DIM, hidden)
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="perf-table-") as tmp:
        for n in [int(x) for x in args.students.split(",")]:
            models: Dict[str, Any] = {}
            notes = {}
            for p in precisions:
                models[f"ours-{p}"] = Workload(Path(tmp), n, p, batch_size=args.batch_size, hidden=hidden)
                notes[p] = models[f"ours-{p}"].note
            if site is not None:
                from ektf_equivalent import EKTFWorkload

                data = Path(tmp) / next(d.name for d in Path(tmp).iterdir() if d.name.startswith("perf-"))
                for p in precisions:
                    effective = models[f"ours-{p}"].precision
                    models[f"ektf-{p}"] = EKTFWorkload(data, n, effective, args.batch_size, hidden)
            times = measure(models, args.cell_seconds * len(precisions))
            med = {k: statistics.median(v) for k, v in times.items()}
            for p in precisions:
                ours = med[f"ours-{p}"]
                ektf32 = med.get("ektf-fp32")
                ektfp = med.get(f"ektf-{p}")
                effective = models[f"ours-{p}"].precision
                gflops = 6 * args.batch_size * n * w / ours / 1e9
                rows.append({"n": n, "precision": p, "effective_precision": effective, "note": notes[p],
                             "steps": len(times[f"ours-{p}"]),
                             "samples_per_s": args.batch_size / ours, "ms_per_step": 1e3 * ours,
                             "ektf_fp32_samples_per_s": args.batch_size / ektf32 if ektf32 else None,
                             "ektf_samples_per_s": args.batch_size / ektfp if ektfp else None,
                             "ratio_vs_ektf_fp32": ektf32 / ours if ektf32 else None,
                             "ratio_vs_ektf_same_precision": ektfp / ours if ektfp else None,
                             "gflop_per_s": gflops, "fraction_of_peak": gflops / peak[effective],
                             "step_seconds": times[f"ours-{p}"],
                             "ektf_step_seconds": times.get(f"ektf-{p}")})
                r = rows[-1]
                print(f"N={n:<3} {p}: {r['samples_per_s']:>9,.0f} samples/s  "
                      + (f"EKTF fp32 {r['ektf_fp32_samples_per_s']:>9,.0f}  ratio {r['ratio_vs_ektf_fp32']:.2f}  "
                         if ektf32 else "") + f"{gflops:6.1f} GFLOP/s {100 * r['fraction_of_peak']:5.1f}% of peak",
                      file=sys.stderr, flush=True)
            del models
    peak_end = {p: square_gemm_peak(p, args.peak_size) for p in ("fp32", "bf16")}
    best = {p: max(peak[p], peak_end[p]) for p in peak}
    for r in rows:  # fraction of the better of the two peak measurements
        r["fraction_of_peak"] = r["gflop_per_s"] / best[r["effective_precision"]]
    info.update({"load_average_end": list(os.getloadavg()), "batch_size": args.batch_size, "fields": FIELDS,
                 "embedding_dim": EMBEDDING_DIM, "hidden_units": hidden, "weights_per_student": w,
                 "method": "kdef", "cell_seconds": args.cell_seconds,
                 "square_gemm_peak_gflop_per_s": {"start": peak, "end": peak_end, "used": best,
                                                  "size": args.peak_size},
                 "ektf": ektf_note or f"FuxiCTR from {site}", "rows": rows})
    return info


def markdown(info: Dict[str, Any]) -> str:
    m = info["machine"]
    la0 = ", ".join(f"{x:.2f}" for x in info["load_average_start"])
    la1 = ", ".join(f"{x:.2f}" for x in info["load_average_end"])
    peak = info["square_gemm_peak_gflop_per_s"]["used"]
    lines = [
        "# Performance table: collapse-lab KDEF step vs the EKTF-equivalent (FuxiCTR 2.3.10 layers)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['cpu_capability']}; bf16: {m['bf16']}), "
        f"{m['threads']} torch thread(s), Python {m['python']}. Load average (1, 5, 15 min) at start {la0}, "
        f"at end {la1}.", "",
        f"Workload: B = {info['batch_size']}, {info['fields']} fields x d = {info['embedding_dim']}, students "
        f"{info['hidden_units']} + BatchNorm + dropout 0.1, KDEF loss, clip 10, Adam; W = "
        f"{info['weights_per_student']:,} weights per student. Square-GEMM peak (torch.matmul "
        f"{info['square_gemm_peak_gflop_per_s']['size']}^3, best of start/end): fp32 {peak['fp32']:.0f}, bf16 "
        f"{peak['bf16']:.0f} GFLOP/s. Median step of interleaved rounds; ratio = collapse-lab / EKTF-equivalent "
        f"fp32 in the same process. {info['ektf']}.", "",
        "| N | precision | collapse-lab samples/s | EKTF-eq. fp32 samples/s | EKTF-eq. same precision samples/s "
        "| ratio vs EKTF fp32 | GFLOP/s | fraction of peak | steps |",
        "|---|---|---|---|---|---|---|---|---|"]

    def fmt(x: Any, spec: str) -> str:
        return "—" if x is None else format(x, spec)

    for r in info["rows"]:
        prec = r["precision"] if r["effective_precision"] == r["precision"] else \
            f"{r['precision']} (ran {r['effective_precision']})"
        lines.append(f"| {r['n']} | {prec} | {r['samples_per_s']:,.0f} | {fmt(r['ektf_fp32_samples_per_s'], ',.0f')} "
                     f"| {fmt(r['ektf_samples_per_s'], ',.0f')} | {fmt(r['ratio_vs_ektf_fp32'], '.2f')} "
                     f"| {r['gflop_per_s']:.1f} | {100 * r['fraction_of_peak']:.0f}% | {r['steps']} |")
    return "\n".join(lines) + "\n"


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="1,2,4,10,16")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--hidden", default="400,400,400")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: robust on a shared machine)")
    parser.add_argument("--cell-seconds", type=float, default=20.0, help="time budget per (N, precision) cell")
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument("--ektf", default="auto", help="auto | off | a site-packages directory holding fuxictr")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    import torch

    old_threads = torch.get_num_threads()
    old_flush = torch.tensor([1e-40], dtype=torch.float32).item() == 0.0  # FTZ/DAZ is process-global CPU state
    try:
        info = run(args)
    finally:  # a caller in the same process (the CI test) gets IEEE floats and its thread count back
        torch.set_num_threads(old_threads)
        torch.set_flush_denormal(old_flush)
    atomic_write_json(args.out_dir / "perf-table.json", info)
    text = markdown(info)
    (args.out_dir / "perf-table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
