"""Learned-regime search on ML-100K: does a single model's last hidden layer leave the random bulk at the checkpoint
that a sweep analyses?

Input: run directories of single models (``method=vanilla n=1``) trained with ``collapse-lab train`` for a fixed
number of epochs **without** learning-rate decay (``lr_decay_factor=1.0``, ``patience`` = ``max_epochs``) and the
default spectra cadence (``spectra_every=1``, ``spectra_unit=epoch``). Without decay the learning rate never depends
on the validation curve, so a run with an early-stopping rule follows the same trajectory as the long run up to its
stop (CPU training is deterministic). For every run and every stopping rule this script replays the rule with the
trainer's own :class:`~collapse_lab.training.schedule.PlateauMonitor` on the run's per-epoch validation AUC
(``metrics.csv``) and reads the weight metrics of the best epoch — the checkpoint that ``collapse-lab spectrum`` and
``collapse-lab reproduce`` analyse — from ``spectra_trace.csv`` (docs/metrics.md §2, §12). Rules:

* ``patience=p`` (``--patience``): stop after p evaluations without improvement, capped by the run's length;
* ``epochs=E`` (``--epochs``): a fixed budget of E epochs (no early stop), best checkpoint within epochs 1..E.

A layer has left the random bulk when its stable rank ‖W‖²_F / σ²_max is below ``--ratio`` (0.6) times the mean
stable rank of same-shape Gaussian matrices of equal Frobenius norm (the trace's ``ratio`` column). KA above the
Marchenko–Pastur bulk edge (``knowledge_abundance_mp``) is reported beside it but not used as the criterion: at
width 128 the initial weights of some seeds already have one σ above the asymptotic edge (KA_mp = 1/128 at step 0).

Output: a tidy CSV, one row per (run, rule, hidden layer), columns :data:`COLUMNS`. ``train_s`` is the measured
training time of epochs 1..stop (rows / the epoch's training samples per second, ``manifest.json`` timing; evaluation,
spectra and start-up excluded); ``run_wall_s`` is the wall time of the whole run directory (manifest created ->
updated, one-second resolution). Example (the settings of ``bench/results/learned-regime-search.md``)::

    collapse-lab train method=vanilla n=1 hidden_units=[128,128,128] batch_size=256 lr=0.002 lr_decay_factor=1.0 \\
        max_epochs=20 patience=20 embedding_regularizer=0.01 num_threads=1 seed=2024 --out runs/w128-b256-lr2e3
    python bench/learned_regime.py runs/w128-b256-lr2e3 ... --csv-out bench/results/learned-regime-search.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = ("run", "hidden_units", "batch_size", "lr", "seed", "rule", "stop_epoch", "best_epoch", "best_step",
           "valid_auc", "train_s", "run_wall_s", "layer", "ka_mp", "ka_mp_init", "ka_mp_baseline", "ka_abs",
           "stable_rank", "stable_rank_ratio", "sv_max", "left_bulk")


def replay(valid_auc: Sequence[float], patience: int, max_epochs: int) -> Tuple[int, int]:
    """``(stop_epoch, best_epoch)`` of the trainer's plateau rule without decay on a per-epoch validation AUC curve.

    ``valid_auc[e - 1]`` is the AUC after epoch e. Uses :class:`~collapse_lab.training.schedule.PlateauMonitor`
    (factor 1.0: no learning-rate change), so ties and the minimum improvement are those of training.

    Example:
        >>> replay([0.70, 0.72, 0.71, 0.715, 0.73], patience=2, max_epochs=5)
        (4, 2)
        >>> replay([0.70, 0.72, 0.71, 0.715, 0.73], patience=5, max_epochs=5)
        (5, 5)
    """
    from collapse_lab.training.schedule import PlateauMonitor

    monitor = PlateauMonitor(SimpleNamespace(param_groups=[{"lr": 0.0}]), factor=1.0, patience=patience)
    epochs = min(max_epochs, len(valid_auc))
    for epoch in range(1, epochs + 1):
        monitor.step(valid_auc[epoch - 1], epoch=epoch, step=epoch)
        if monitor.should_stop:
            return epoch, monitor.best_epoch
    return epochs, monitor.best_epoch


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def read_run(run: Path) -> Dict[str, Any]:
    """Validation AUC per epoch, training seconds per epoch, the weights' trace and the config of one run."""
    import pandas as pd

    from collapse_lab.errors import UserError

    manifest = json.loads((run / "manifest.json").read_text())
    cfg = manifest["config"]
    if cfg["n"] != 1 or cfg["lr_decay_factor"] != 1.0:
        raise UserError(f"{run}: expected a single model (n=1) trained without decay (lr_decay_factor=1.0), got "
                        f"n={cfg['n']}, lr_decay_factor={cfg['lr_decay_factor']}")
    metrics = pd.read_csv(run / "metrics.csv")
    auc = metrics[(metrics.split == "valid") & (metrics.member == "ensemble") & (metrics.metric == "auc")]
    auc = auc.drop_duplicates("epoch", keep="first").sort_values("epoch")  # later rows re-score the best epoch
    trace = pd.read_csv(run / "spectra_trace.csv")
    weights = trace[(trace.target == "weights") & (trace.member.astype(str) == "0")].copy()
    weights["layer"] = weights.name.str.extract(r"layers\.(\d+)\.")[0].astype(int) + 1
    rows = manifest["dataset"]["rows"]["train"]
    epoch_s = [rows / sps for sps in manifest["timing"]["train_samples_per_s"]]
    wall = _seconds(manifest["updated"]) - _seconds(manifest["created"])
    steps = dict(zip(auc.epoch, auc.step, strict=True))
    return {"cfg": cfg, "auc": auc.value.tolist(), "steps": steps, "weights": weights, "epoch_s": epoch_s, "wall": wall}


def summarise(run: Path, patiences: Sequence[int], budgets: Sequence[int], ratio: float) -> List[Dict[str, Any]]:
    """The rows of one run: every rule x every hidden layer (see the module docstring)."""
    data = read_run(run)
    cfg, weights = data["cfg"], data["weights"]
    length = len(data["auc"])
    rules = [(f"patience={p}", p, length) for p in patiences]
    rules += [(f"epochs={e}", e, e) for e in budgets if e <= length]
    at = weights.pivot_table(index=["epoch", "layer"], columns="metric", values="value", aggfunc="last")
    ratios = weights.pivot_table(index=["epoch", "layer"], columns="metric", values="ratio", aggfunc="last")
    base = weights.pivot_table(index=["epoch", "layer"], columns="metric", values="baseline", aggfunc="last")
    out = []
    for rule, patience, cap in rules:
        stop, best = replay(data["auc"], patience, cap)
        for layer in sorted(weights.layer.unique()):
            sr_ratio = float(ratios.loc[(best, layer), "stable_rank"])
            out.append({
                "run": run.name, "hidden_units": "x".join(map(str, cfg["hidden_units"])),
                "batch_size": cfg["batch_size"], "lr": cfg["lr"], "seed": cfg["seed"], "rule": rule,
                "stop_epoch": stop, "best_epoch": best, "best_step": int(data["steps"][best]),
                "valid_auc": round(data["auc"][best - 1], 5), "train_s": round(sum(data["epoch_s"][:stop]), 1),
                "run_wall_s": round(data["wall"]) if stop == length else "", "layer": int(layer),
                "ka_mp": round(float(at.loc[(best, layer), "knowledge_abundance_mp"]), 5),
                "ka_mp_init": round(float(at.loc[(0, layer), "knowledge_abundance_mp"]), 5),
                "ka_mp_baseline": round(float(base.loc[(best, layer), "knowledge_abundance_mp"]), 5),
                "ka_abs": round(float(at.loc[(best, layer), "knowledge_abundance"]), 5),
                "stable_rank": round(float(at.loc[(best, layer), "stable_rank"]), 3),
                "stable_rank_ratio": round(sr_ratio, 4), "sv_max": round(float(at.loc[(best, layer), "sv_max"]), 3),
                "left_bulk": sr_ratio < ratio})
    return out


def _ints(text: str) -> List[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: Sequence[str] | None = None) -> List[Dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories (single models, no decay, fixed length)")
    p.add_argument("--patience", type=_ints, default=[2, 3], help="early-stopping rules to replay (default 2,3)")
    p.add_argument("--epochs", type=_ints, default=[5, 10, 15, 20], help="fixed epoch budgets (default 5,10,15,20)")
    p.add_argument("--ratio", type=float, default=0.6, help="stable-rank ratio below which a layer left the bulk")
    p.add_argument("--csv-out", type=Path, help="write the tidy CSV here (atomically)")
    args = p.parse_args(argv)
    rows = [row for run in args.runs for row in summarise(run, args.patience, args.epochs, args.ratio)]
    import pandas as pd

    table = pd.DataFrame(rows, columns=list(COLUMNS))
    if args.csv_out is not None:
        from collapse_lab.io.atomic import atomic_write_text

        atomic_write_text(args.csv_out, table.to_csv(index=False))
    last = table[table.layer == table.layer.max()]
    print(last[["run", "rule", "stop_epoch", "best_epoch", "valid_auc", "train_s", "ka_mp", "stable_rank_ratio",
                "left_bulk"]].to_string(index=False))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
