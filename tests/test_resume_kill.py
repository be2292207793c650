"""Resume after any kill (issue 12 item 3): one consistent checkpoint pair always exists, an interrupted first epoch
restarts cleanly, SIGKILL at random instants (many inside checkpoint writes) then --resume ends exactly like an
uninterrupted run, and a finished run holds no temporary files."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
from kill_fixtures import start_training
from train_fixtures import make_dataset, tiny_config

import collapse_lab.io.checkpoint as checkpoint
import collapse_lab.training.trainer as trainer_module
from collapse_lab.io.checkpoint import load_trainer_state, load_weights, recover_checkpoint_pair, save_checkpoint_pair
from collapse_lab.training.api import train

CFG = {"method": "kdef", "n": 2, "max_epochs": 4, "probe_rows": 32}


class Interrupt(Exception):
    """A simulated interruption."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), rows=3000)


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    return train(tiny_config(dataset, **CFG), tmp_path_factory.mktemp("ref") / "run", device="cpu", console=False)


def assert_same_as(reference, out):
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert (out / "metrics.csv").read_bytes() == (reference.run_dir / "metrics.csv").read_bytes()
    for extra in ("spectra_trace.csv",):  # written beside metrics.csv when the config records it
        if (reference.run_dir / extra).exists():
            assert (out / extra).read_bytes() == (reference.run_dir / extra).read_bytes()
    assert manifest["results"]["test"] == reference.test and manifest["results"]["valid"] == reference.valid
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".old")) or p.name.startswith(".")]
    assert leftovers == []  # no temporary file or half-swapped pair in a finished run


def test_interrupted_first_epoch_restarts_cleanly_under_resume(dataset, reference, tmp_path):
    def stop_in_epoch_one(event, info):
        if event == "evaluation" and info["epoch"] == 1:  # before the first checkpoint pair
            raise Interrupt("killed in epoch 1")

    out = tmp_path / "r"
    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG), out, device="cpu", console=False, callbacks=[stop_in_epoch_one])
    assert not (out / "checkpoints" / "last").exists() and (out / "manifest.json").exists()
    train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)  # was "trainer state not found"
    assert_same_as(reference, out)
    assert "no finished epoch to resume from" in (out / "train.log").read_text()


def test_stopped_between_weights_and_trainer_state_resumes_exactly(dataset, reference, tmp_path, monkeypatch):
    save_state = checkpoint.save_trainer_state

    def die_in_epoch_two(path, state):
        if state["epoch"] == 2:
            raise Interrupt("killed between the two files of the pair")
        return save_state(path, state)

    monkeypatch.setattr(checkpoint, "save_trainer_state", die_in_epoch_two)
    monkeypatch.setattr(trainer_module, "save_trainer_state", die_in_epoch_two, raising=False)  # older layout
    out = tmp_path / "r"
    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG), out, device="cpu", console=False)
    monkeypatch.undo()
    state = load_trainer_state(out / "checkpoints" / "last" / "trainer_state.pt")
    _, meta = load_weights(out / "checkpoints" / "last" / "model.safetensors")
    assert state["epoch"] == 1 and meta["epoch"] == "1"  # the pair of epoch 1 is still whole
    train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)
    assert_same_as(reference, out)


def _pair(tmp_path, epoch):
    import torch

    return save_checkpoint_pair(tmp_path / "last", {"w": torch.full((2,), float(epoch))}, {"epoch": epoch},
                                {"epoch": epoch})


def _epochs(final):
    weights, meta = load_weights(final / "model.safetensors")
    return int(meta["epoch"]), load_trainer_state(final / "trainer_state.pt")["epoch"], float(weights["w"][0])


def test_pair_swap_interrupted_between_renames_recovers_the_previous_pair(tmp_path, monkeypatch):
    _pair(tmp_path, 1)
    real_replace = checkpoint.os.replace

    def crash_before_new_pair_lands(src, dst):
        if str(dst) == str(tmp_path / "last"):  # the old pair is aside, the new one not yet in place
            raise Interrupt
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", crash_before_new_pair_lands)
    with pytest.raises(Interrupt):
        _pair(tmp_path, 2)
    monkeypatch.undo()
    assert not (tmp_path / "last").exists() and (tmp_path / ".last.old").is_dir()
    assert recover_checkpoint_pair(tmp_path / "last")
    assert _epochs(tmp_path / "last") == (1, 1, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    _pair(tmp_path, 3)
    assert _epochs(tmp_path / "last") == (3, 3, 3.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_pair_interrupted_while_writing_leaves_the_previous_pair_and_no_temporaries(tmp_path, monkeypatch):
    _pair(tmp_path, 1)

    def boom(path, state):
        raise Interrupt

    monkeypatch.setattr(checkpoint, "save_trainer_state", boom)
    with pytest.raises(Interrupt):
        _pair(tmp_path, 2)
    assert _epochs(tmp_path / "last") == (1, 1, 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_sigkill_at_random_instants_then_resume_ends_like_an_uninterrupted_run(dataset, reference, tmp_path):
    """>= 10 SIGKILLs: half at uniform instants of the run, half inside a checkpoint-pair write (announced by the
    child, whose writes are slowed by ``delay``); after each kill the next attempt resumes, and every run that
    reaches the end must equal the uninterrupted reference."""
    config = tiny_config(dataset, **CFG)
    delay = 0.02
    rng = np.random.default_rng(20241125)
    kills, in_pair, rounds, attempts = 0, 0, 0, 0
    out = tmp_path / f"round{rounds}"
    while kills < 10 or (out / "manifest.json").exists():
        attempts += 1
        assert attempts < 60, "runs do not progress"
        resume = (out / "manifest.json").exists()
        proc, conn = start_training(config, out, resume=resume, delay=delay)
        assert conn.recv() == "start"
        finished = None
        if kills < 10 and rng.random() < 0.5:  # inside the k-th pair write
            target, seen = int(rng.integers(1, 3)), 0
            while finished is None and seen < target:
                msg = conn.recv()
                seen += msg == "pair"
                finished = msg if msg.startswith(("done", "error")) else None
            when, inside = rng.uniform(0, 8 * delay), True
        elif kills < 10:
            when, inside = rng.uniform(0, 1.5), False  # a whole run takes about 3 s
        else:  # enough kills: let this round finish
            when, inside = None, False
        if finished is None and when is not None:
            deadline = time.monotonic() + when
            while finished is None and time.monotonic() < deadline:
                if conn.poll(max(0.0, deadline - time.monotonic())):
                    msg = conn.recv()
                    finished = msg if msg.startswith(("done", "error")) else None
        if finished is None and when is not None and proc.is_alive():
            proc.kill()  # SIGKILL
            proc.join()
            assert proc.exitcode == -signal.SIGKILL
            kills += 1
            in_pair += inside
            continue
        while finished is None:
            msg = conn.recv()
            finished = msg if msg.startswith(("done", "error")) else None
        proc.join()
        assert finished == "done", finished
        assert_same_as(reference, out)
        rounds += 1
        out = tmp_path / f"round{rounds}"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging or lock left
    print(f"kills {kills} (inside a pair write {in_pair}), finished rounds {rounds}, attempts {attempts}")
    assert kills >= 10 and in_pair >= 3 and rounds >= 1
