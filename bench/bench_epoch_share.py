"""Share of a training epoch spent in evaluation and in data iteration (docs/performance.md §7).

Trains real collapse-lab runs (``collapse_lab.train``: the Trainer, its BatchIterator over the memory-mapped
splits, the validation pass after every epoch, checkpoints and the spectra trace at their defaults) and reads the
trainer's own phase clocks (:attr:`collapse_lab.training.trainer.Trainer.phase_seconds`, two ``perf_counter``
reads per step): per epoch

    data  = seconds in ``next(train_batches)``      (gather from the memory maps, tensors)
    step  = seconds in the optimisation step        (forward, loss, backward, clipping, Adam)
    eval  = seconds in ``evaluate(valid)``           (forward over the validation split, AUC/logloss per member)
    other = epoch wall - data - step - eval         (statistics, checkpoints/last and best, spectra trace, logging)

    share(X) = X / epoch wall;   goal: share(data) + share(eval) <= 10%

Cases (one process, one thread by default): ML-100K at B = 4096 (80k/10k/10k rows; the last epoch is reported,
the first includes warm-up) and a synthetic planted dataset of ``--synthetic-rows`` rows (default 2M, 80/10/10,
24 fields, 1,000 ids per field) for one epoch. Students [400]*3, KDEF.

Usage: ``python bench/bench_epoch_share.py --json-out bench/results/epoch-share.json``; smoke:
``--synthetic-rows 20000 --hidden 32 --ml100k-epochs 1``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from collapse_lab.io.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def share_of_epoch(phases: Dict[str, float]) -> Dict[str, float]:
    """``{data, step, eval, other}`` as fractions of the epoch wall time (``phases["epoch"]``)."""
    wall = phases["epoch"]
    out = {k: phases[k] / wall for k in ("data", "step", "eval")}
    out["other"] = 1.0 - sum(out.values())
    out["data_plus_eval"] = out["data"] + out["eval"]
    return out


def run_case(name: str, dataset: str, overrides: List[str], out: Path, threads: int) -> Dict[str, Any]:
    from collapse_lab.training.api import train

    seen: Dict[str, Any] = {}

    def grab(event: str, info: Dict[str, Any]) -> None:
        seen["trainer"] = info["trainer"]

    t0 = time.perf_counter()
    result = train([f"dataset={dataset}", f"num_threads={threads}", *overrides], out / name, device="cpu",
                   console=False, progress=False, callbacks=[grab])
    wall = time.perf_counter() - t0
    trainer = seen["trainer"]
    epochs = []
    for epoch, phases in sorted(trainer.phase_seconds.items()):
        row = {"epoch": epoch, **{f"{k}_s": v for k, v in phases.items()}, "share": share_of_epoch(phases),
               "steps": len(trainer.train_batches), "valid_rows": len(trainer.valid_batches.split)}
        epochs.append(row)
        s = row["share"]
        print(f"{name} epoch {epoch}: {phases['epoch']:.2f} s; data {100 * s['data']:.2f}%  step "
              f"{100 * s['step']:.1f}%  eval {100 * s['eval']:.2f}%  other {100 * s['other']:.2f}%  "
              f"-> data+eval {100 * s['data_plus_eval']:.2f}%", file=sys.stderr)
    return {"case": name, "dataset": dataset, "overrides": overrides, "train_rows": len(trainer.train_batches.split),
            "epochs": epochs, "reported": epochs[-1], "wall_s": wall,
            "test_auc": result.results["test"]["ensemble"]["auc"]}


def main(argv: List[str] | None = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ml100k", default="movielens-100k", help="processed ML-100K (name or directory); '' skips")
    p.add_argument("--ml100k-epochs", type=int, default=2)
    p.add_argument("--synthetic-rows", type=int, default=2_000_000, help="0 skips the synthetic case")
    p.add_argument("--students", type=int, default=1)
    p.add_argument("--hidden", default="400,400,400")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    from collapse_lab.data.synthetic import make_synthetic

    torch.set_num_threads(args.threads)
    common = ["method=kdef", f"n={args.students}", f"hidden_units=[{args.hidden}]", f"batch_size={args.batch_size}"]
    cases = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        if args.ml100k:
            cases.append(run_case("ml100k", args.ml100k, [*common, f"max_epochs={args.ml100k_epochs}"], work,
                                  args.threads))
        if args.synthetic_rows:
            t0 = time.perf_counter()
            path = make_synthetic(work / "synthetic", rows=args.synthetic_rows, fields=24, vocab_size=1000, seed=1)
            print(f"synthetic {args.synthetic_rows:,} rows generated in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            cases.append(run_case(f"synthetic_{args.synthetic_rows}", str(path), [*common, "max_epochs=1"], work,
                                  args.threads))
    info = {"threads": args.threads, "students": args.students, "hidden_units": args.hidden,
            "batch_size": args.batch_size, "torch": torch.__version__, "load_average_end": list(os.getloadavg()),
            "cases": cases,
            "max_data_plus_eval_share": max(c["reported"]["share"]["data_plus_eval"] for c in cases)}
    if args.json_out:
        atomic_write_json(args.json_out, info)
    return info


if __name__ == "__main__":
    main()
