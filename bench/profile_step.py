"""Profile one fp32 (or bf16) KDEF training step with torch.profiler and print where the time goes.

The workload of ``bench/perf_table.py``: synthetic data shaped like ML-100K (8 categorical fields, d = 16, so a
128-wide input), students MLP 128 -> 400 -> 400 -> 400 -> 1 with BatchNorm and dropout 0.1, batch 4096, the real
:func:`collapse_lab.training.trainer.training_step` (forward, KDEF loss, embedding L2, backward, clipping, Adam).
Prints the operators by self CPU time (``key_averages``) and the share of the step of each group:

    share(op) = self CPU time of op / sum of self CPU times over the profiled steps

Usage: ``python bench/profile_step.py --students 1,10 [--precision bf16] [--steps 3] [--threads 2]``.
Not a test; docs/performance.md §3.1 quotes its output.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def main(argv: list | None = None) -> None:
    import torch
    from perf_workload import Workload  # bench/perf_workload.py
    from torch.profiler import ProfilerActivity, profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="1,10")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.students.split(",")]:
            w = Workload(Path(tmp), n, args.precision, batch_size=args.batch_size)
            w.step()
            w.step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.steps):
                    w.step()
            events = prof.key_averages()
            total = sum(e.self_cpu_time_total for e in events)
            print(f"\n== N = {n}, {args.precision}, {args.steps} steps: {total / 1e3 / args.steps:.1f} ms/step "
                  f"(self CPU, {torch.get_num_threads()} threads)")
            for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]:
                ms = e.self_cpu_time_total / 1e3 / args.steps
                print(f"{e.key[:48]:48s} {e.count // args.steps:5d}/step {ms:8.2f} ms  "
                      f"{100 * e.self_cpu_time_total / total:5.1f}%")


if __name__ == "__main__":
    main()
