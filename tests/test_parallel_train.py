"""Two-process training (gloo, CPU) equals single-process training: ``train(parallel="data"|"ensemble")``.

One ``torch.multiprocessing.spawn`` of two ranks runs every case in one process group (starting processes is
the expensive part on a small CPU); the single-process references run in the test process.

Without BatchNorm the runs agree to float rounding (metrics.csv, test AUC, every checkpointed tensor). With
BatchNorm, one step is compared instead: Adam turns the float-rounding-sized gradient of the Linear biases in
front of BatchNorm (zero in exact arithmetic: BatchNorm subtracts them) into +-lr steps, so whole runs drift
apart exactly as the loop and batched forms of one process do (docs/architecture.md §11).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from train_fixtures import make_dataset, tiny_config

from collapse_lab.errors import UserError
from collapse_lab.io.checkpoint import load_weights
from collapse_lab.training.api import RunResult, train

#: (strategy, config overrides): both student forms, an uneven split of 3 students, concat fusion
CASES = {
    "data-loop": ("data", {"form": "loop"}),
    "data-batched": ("data", {"form": "batched"}),
    "ensemble-loop": ("ensemble", {"form": "loop"}),
    "ensemble-batched-concat": ("ensemble", {"form": "batched", "fusion": "concat", "method": "kd"}),
}
COMMON = {"n": 3, "max_epochs": 2, "batch_norm": False, "net_dropout": 0.1, "spectra_every": 0}


def _config(dataset: Path, overrides: dict) -> dict:
    return tiny_config(dataset, **COMMON, **overrides)


def _one_step(dataset: Path, form: str, strategy: str | None, rank: int = 0, world: int = 1):
    """One kdef step with BatchNorm and dropout: (loss, weights, gradients, BatchNorm running statistics)."""
    from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
    from collapse_lab.models import build_ensemble
    from collapse_lab.parallel.step import data_parallel_step, ensemble_parallel_step
    from collapse_lab.strategies import build_strategy
    from collapse_lab.training.trainer import training_step

    data = ProcessedDataset(dataset)
    torch.manual_seed(7)  # the dropout stream
    model = build_ensemble(data.feature_map, num_students=3, hidden_units=[16, 16], embedding_dim=4,
                           net_dropout=0.1, batch_norm=True, form=form, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = next(iter(BatchIterator(data.split("train"), 250, shuffle=True, seed=0)))
    step = {None: training_step, "data": data_parallel_step(rank, world),
            "ensemble": ensemble_parallel_step(rank, world, 3)}[strategy]
    parts = step(model, build_strategy("kdef", num_students=3), optimizer, batch, 1e-5, 10.0)
    return float(parts["loss"]), model.export_state_dict(), model.export_gradients()


def _worker(rank: int, world: int, port: int, dataset: Path, out: Path) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        for name, (strategy, overrides) in CASES.items():
            train(_config(dataset, overrides), out / name, device="cpu", console=False, progress=False,
                  parallel=strategy)
        # a run stopped after its first epoch by one process, finished by two (rank 0 sends the state)
        train(_config(dataset, CASES["data-loop"][1]), out / "resumed", resume=True, device="cpu", console=False,
              progress=False, parallel="ensemble")
        for form in ("loop", "batched"):
            for strategy in ("data", "ensemble"):
                result = _one_step(dataset, form, strategy, rank, world)
                if rank == 0:
                    torch.save(result, out / f"step-{strategy}-{form}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(dataset, directory of the two-process runs and steps)."""
    root = tmp_path_factory.mktemp("parallel")
    dataset = make_dataset(root, rows=3000)
    out = root / "parallel"
    out.mkdir()

    def stop_after_first_epoch(event, info):
        if event == "epoch_end":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(dataset, CASES["data-loop"][1]), out / "resumed", device="cpu", console=False,
              progress=False, callbacks=[stop_after_first_epoch])
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), dataset, out), nprocs=2)
    return dataset, out


@pytest.mark.parametrize("case", [*CASES, "resumed"])
def test_two_processes_train_the_single_process_run(runs, case, tmp_path):
    dataset, out = runs
    overrides = CASES["data-loop" if case == "resumed" else case][1]
    single = train(_config(dataset, overrides), tmp_path / "single", device="cpu", console=False, progress=False)
    multi = out / case
    assert RunResult.from_run_dir(multi).manifest["status"] == "complete"
    a, b = pd.read_csv(single.run_dir / "metrics.csv"), pd.read_csv(multi / "metrics.csv")
    assert a[["epoch", "step", "split", "member", "metric"]].equals(b[["epoch", "step", "split", "member", "metric"]])
    # float sums differ across processes (all-reduced BatchNorm statistics, gathered logits); an AUC moves in steps
    # of 1 / (positives * negatives) ~ 5e-5 on this split when two nearly tied predictions swap
    auc = (a["metric"] == "auc").to_numpy()
    np.testing.assert_allclose(b["value"][~auc], a["value"][~auc], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b["value"][auc], a["value"][auc], rtol=0, atol=1e-4)
    for name in ("best", "last"):
        wa, _ = load_weights(single.run_dir / "checkpoints" / name / "model.safetensors")
        wb, _ = load_weights(multi / "checkpoints" / name / "model.safetensors")
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-6, msg=f"{name}: {key}")
    assert RunResult.from_run_dir(multi).summary["ensemble_auc"] == pytest.approx(single.summary["ensemble_auc"],
                                                                                  abs=1e-6)


@pytest.mark.parametrize("form", ["loop", "batched"])
@pytest.mark.parametrize("strategy", ["data", "ensemble"])
def test_one_step_with_batch_norm_equals_single_process(runs, strategy, form):
    dataset, out = runs
    loss, weights, grads = _one_step(dataset, form, None)
    loss2, weights2, grads2 = torch.load(out / f"step-{strategy}-{form}.pt", weights_only=True)
    assert loss2 == pytest.approx(loss, rel=1e-6)  # same dropout masks, whole-batch BatchNorm and exam weights
    assert grads2.keys() == grads.keys()
    for key in grads:
        torch.testing.assert_close(grads2[key], grads[key], rtol=1e-4, atol=1e-5, msg=key)
    for key in weights:
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            torch.testing.assert_close(weights2[key], weights[key], rtol=1e-5, atol=1e-6, msg=key)


def test_parallel_outside_a_launcher_is_a_one_line_error(tmp_path, monkeypatch):
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UserError, match=r"torchrun --nproc_per_node=G -m collapse_lab train --parallel data"):
        train(_config(tmp_path / "unused", {}), tmp_path / "run", device="cpu", parallel="data")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_whole_mask_is_the_mask_single_process_dropout_draws(layout):
    from collapse_lab.models import shard
    from collapse_lab.parallel.ops import whole_mask

    a = torch.rand(6, 3, 5) + 0.5 if layout == "contiguous" else (torch.rand(3, 6, 5) + 0.5).transpose(0, 1)
    torch.manual_seed(0)
    whole = shard.dropout(a, 0.3, True)  # (6, 3, 5)
    torch.manual_seed(0)
    rows = a[2:5] * whole_mask(a[2:5], a.shape, (slice(2, 5),), 0.3)  # a data-parallel rank's rows
    torch.testing.assert_close(rows, whole[2:5], rtol=0, atol=0)
    torch.manual_seed(0)
    members = a[:, 1:2] * whole_mask(a[:, 1:2], a.shape, (slice(None), slice(1, 2)), 0.3)  # one student
    torch.testing.assert_close(members, whole[:, 1:2], rtol=0, atol=0)
    assert 0 < int((whole == 0).sum()) < whole.numel()  # the test draws a real mask
    kept = whole != 0
    torch.testing.assert_close(whole[kept], a[kept] / 0.7, rtol=1e-6, atol=0)  # survivors scaled by 1 / (1 - p)


@pytest.mark.parametrize("strategy", ["data", "ensemble"])
def test_parallel_modes_refuse_non_mlp_students_in_one_line(strategy):
    from collapse_lab.errors import UserError
    from collapse_lab.parallel.group import Group

    group = Group(strategy=strategy, rank=0, world_size=2, device="cpu", owns_group=False)
    group.check(3, 64, ["mlp", "mlp", "mlp"])  # MLP students: fine
    with pytest.raises(UserError, match=rf"^--parallel {strategy} trains mlp students only, not ecn, pnn; "):
        group.check(3, 64, ["pnn", "mlp", "ecn"])
