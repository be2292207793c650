"""Pieces of the trainer checked against hand-computed values: metrics, plateau rule, statistics, checkpoint and
trainer-state files, RNG states, the metrics log, the run directory and the manifest."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from collapse_lab.errors import UserError
from collapse_lab.io.checkpoint import (
    file_sha256,
    load_trainer_state,
    load_weights,
    save_trainer_state,
    save_weights,
)
from collapse_lab.io.manifest import Manifest, read_manifest
from collapse_lab.io.rundir import MetricsLog, RunDir
from collapse_lab.training.evaluation import score, score_members, summarize
from collapse_lab.training.rng import get_rng_state, set_rng_state
from collapse_lab.training.schedule import PlateauMonitor
from collapse_lab.training.stats import TrainStats


def test_score_matches_hand_computed_auc_and_logloss():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.4, 0.3, 0.2])
    # positive/negative pairs: (0.9>0.4) (0.9>0.2) (0.3<0.4) (0.3>0.2) -> 3 of 4
    expected_ll = -(np.log(0.9) + np.log(0.6) + np.log(0.3) + np.log(0.8)) / 4
    out = score(y, p)
    assert out["auc"] == 0.75 and out["logloss"] == pytest.approx(expected_ll, rel=1e-12)
    with pytest.raises(UserError, match="valid: the split has only one class"):
        score(np.ones(3), np.array([0.1, 0.2, 0.3]), "valid")
    with pytest.raises(UserError, match="non-finite"):
        score(y, np.array([0.5, np.nan, 0.5, 0.5]))


def test_members_use_sigmoid_of_the_fused_logit_and_of_each_student():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    logits = np.array([[2.0, -1.0], [0.0, 1.0], [1.0, -2.0], [-1.0, 0.5]])  # (R, N)
    fused = logits.mean(axis=1)
    out = score_members(y, logits, fused)
    assert set(out) == {"ensemble", "0", "1"}
    assert out["0"]["auc"] == 1.0 and out["1"]["auc"] == 0.0  # student 1 ranks every pair the wrong way
    sig = 1 / (1 + np.exp(-fused))
    assert out["ensemble"]["logloss"] == pytest.approx(-np.mean(y * np.log(sig) + (1 - y) * np.log(1 - sig)))
    s = summarize(out, {"lambda_mean": 0.5, "lambda_std": 0.0, "mu_mean": None, "mu_std": None})
    assert (s["best_student"], s["worst_student"], s["spread"]) == (0, 1, 1.0)
    assert s["gap"] == out["ensemble"]["auc"] - 1.0 and s["lambda_mean"] == 0.5 and s["mu_mean"] is None


def test_plateau_rule_decays_floors_and_stops():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    mon = PlateauMonitor(opt, factor=0.1, min_lr=1e-6, patience=2)
    history = []
    for e, v in enumerate([0.70, 0.70 + 5e-7, 0.72, 0.71, 0.7200009, 0.73, 0.73, 0.73, 0.73], start=1):
        improved = mon.step(v, epoch=e, step=10 * e)
        history.append((improved, mon.counter, round(mon.lr, 12), mon.should_stop))
    assert history == [
        (True, 0, 1e-3, False),
        (False, 1, 1e-4, False),  # +5e-7 is not an improvement (needs > 1e-6)
        (True, 0, 1e-4, False),  # improvement resets the counter but does not restore the lr
        (False, 1, 1e-5, False),
        (False, 2, 1e-6, True),  # patience 2 reached
        (True, 0, 1e-6, False),
        (False, 1, 1e-6, False),  # floor: max(1e-7, 1e-6)
        (False, 2, 1e-6, True),
        (False, 3, 1e-6, True),
    ]
    assert (mon.best, mon.best_epoch, mon.best_step) == (0.73, 6, 60)
    restored = PlateauMonitor(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3))
    restored.load_state_dict(mon.state_dict())
    assert (restored.best, restored.counter, restored.best_epoch) == (0.73, 3, 6)


def test_stats_means_em_weights_and_first_nonfinite_step():
    s = TrainStats()
    zero = torch.tensor(0.0)
    for loss, lam in [(1.0, [0.2, 0.3, 0.5]), (2.0, [0.4, 0.3, 0.3]), (float("nan"), [0.3, 0.3, 0.4])]:
        mu = torch.tensor([[0.0, 0.6, 0.4], [0.5, 0.0, 0.5], [0.9, 0.1, 0.0]])
        s.update({"loss": torch.tensor(loss), "task_loss": zero, "kd_loss": zero, "mutual_loss": zero,
                  "reg_loss": zero}, torch.tensor(lam), mu)
    assert s.first_nonfinite() == 2 and s.first_nonfinite() is None  # checked steps are not re-reported
    restored = TrainStats()
    restored.load_state_dict(s.state_dict())
    out = restored.summary()
    lam = np.array([[0.2, 0.3, 0.5], [0.4, 0.3, 0.3], [0.3, 0.3, 0.4]])
    assert out["lambda"] == pytest.approx(lam.mean(axis=0).tolist())
    assert out["lambda_std"] == pytest.approx(lam.std())
    off = np.array([0.6, 0.4, 0.5, 0.5, 0.9, 0.1])
    assert out["mu_mean"] == pytest.approx(off.mean()) and out["mu_std"] == pytest.approx(off.std())
    assert np.isnan(out["loss"])


def test_weights_file_round_trip_metadata_sha_and_errors(tmp_path):
    base = torch.arange(12.0).reshape(2, 2, 3)
    tensors = {"a": base[0], "b": base[1], "ids": torch.tensor([3, 1], dtype=torch.int64)}  # views sharing memory
    path = tmp_path / "ckpt" / "model.safetensors"
    sha = save_weights(path, tensors, {"epoch": 4, "name": "best"})
    loaded, meta = load_weights(path)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors) and loaded["ids"].dtype == torch.int64
    assert meta == {"format": "collapse-lab-weights-v1", "epoch": "4", "name": "best"}
    assert sha == file_sha256(path) and not list(path.parent.glob(".*.tmp"))  # no temporary left behind
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(UserError, match="not a readable safetensors checkpoint"):
        load_weights(path)
    with pytest.raises(UserError, match="checkpoint not found"):
        load_weights(tmp_path / "missing.safetensors")


def test_trainer_state_loads_weights_only_and_restores_optimizer_and_rng(tmp_path):
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([param], lr=1e-3)
    mon = PlateauMonitor(opt)
    for v in (0.5, 0.4):
        param.grad = torch.ones(3)
        opt.step()
        mon.step(v, 1, 1)
    random.random()
    np.random.rand()
    state = {"optimizer": opt.state_dict(), "monitor": mon.state_dict(), "rng": get_rng_state(), "epoch": 2}
    expected = (random.random(), np.random.rand(), torch.rand(2))
    path = tmp_path / "trainer_state.pt"
    save_trainer_state(path, state)
    loaded = load_trainer_state(path)  # torch.load(weights_only=True) inside
    assert torch.load(path, weights_only=True)["epoch"] == 2
    set_rng_state(loaded["rng"])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(Exception, match="Unsupported global|weights_only"):
        save_trainer_state(tmp_path / "bad.pt", {"obj": RunDir(tmp_path)})  # custom classes are refused
    assert not (tmp_path / "bad.pt").exists()
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="unreadable trainer state"):
        load_trainer_state(path)


def test_metrics_log_rewrites_atomically_and_truncates_on_resume(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.add(1, 5, "train", "ensemble", "loss", 0.5)
    log.add(1, 5, "train", 0, "lambda", None)  # absent, not written
    log.add(1, 5, "valid", "ensemble", "auc", 0.1 + 0.2)
    log.add(2, 10, "valid", "ensemble", "auc", 0.7)
    log.flush()
    again = MetricsLog(log.path)
    again.load(keep=2)
    assert again.rows == [(1, 5, "train", "ensemble", "loss", 0.5), (1, 5, "valid", "ensemble", "auc", 0.1 + 0.2)]
    with pytest.raises(UserError, match="has 3 rows but the trainer state expects 5"):
        again.load(keep=5)
    log.path.write_text("epoch,step,split,member,metric,value\n1,x,valid,ensemble,auc,0.5\n")
    with pytest.raises(UserError, match="line 2: malformed metrics row"):
        again.load()


def test_run_directory_rules(tmp_path):
    run = RunDir.prepare(tmp_path / "r")
    (run.path / "x.txt").write_text("old")
    with pytest.raises(UserError, match="exists; pass --resume to continue it or --overwrite"):
        RunDir.prepare(run.path)
    with pytest.raises(UserError, match="no run to resume"):
        RunDir.prepare(run.path, resume=True)
    with pytest.raises(UserError, match="is not a collapse-lab run directory .* refusing to overwrite"):
        RunDir.prepare(run.path, overwrite=True)  # e.g. --out . --overwrite must never wipe a folder
    assert (run.path / "x.txt").exists()
    (run.path / "manifest.json").write_text('{"name": "a web app manifest"}')  # not ours: still refused
    with pytest.raises(UserError, match="is not a collapse-lab run directory .* refusing to overwrite"):
        RunDir.prepare(run.path, overwrite=True)
    (run.path / "manifest.json").write_text('{"kind": "collapse-lab-run"}')
    assert RunDir.prepare(run.path, overwrite=True).path.exists()  # accepted; the caller replaces it at the end
    assert (run.path / "x.txt").exists()
    assert run.relative(run.checkpoint("best")) == "checkpoints/best/model.safetensors"


def test_manifest_create_save_and_checks(tmp_path):
    m = Manifest.create(tmp_path / "manifest.json", device="cpu", config={"n": 1})
    m.set_checkpoint({"name": "epoch_0002", "path": "p2"})
    m.set_checkpoint({"name": "best", "path": "p1", "epoch": 1})
    m.set_checkpoint({"name": "best", "path": "p1", "epoch": 3})
    m.save()
    data = read_manifest(tmp_path)
    assert [c["name"] for c in data["checkpoints"]] == ["best", "epoch_0002"] and data["checkpoints"][0]["epoch"] == 3
    assert data["status"] == "running" and data["git"].keys() == {"commit", "dirty"}
    assert "torch" in data["environment"]
    (tmp_path / "manifest.json").write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(UserError, match="schema_version 99 is not supported"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{\n  oops")
    with pytest.raises(UserError, match="line 2: invalid JSON"):
        read_manifest(tmp_path)


def test_training_restores_the_global_flush_denormal_state(tmp_path):
    """The trainer flushes denormals for speed, but must not leave the process in FTZ mode afterwards."""
    import torch
    from train_fixtures import make_dataset, tiny_config

    from collapse_lab.training.api import train

    torch.set_flush_denormal(False)
    train(tiny_config(make_dataset(tmp_path, rows=1000), max_epochs=1, n=1), out_dir=tmp_path / "run",
          progress=False, console=False)
    assert torch.tensor([1e-40], dtype=torch.float32).item() != 0.0
