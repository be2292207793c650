"""The learned-regime preset (configs/sweeps/ml100k_learned.yaml) and the search table behind it."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from collapse_lab.sweep.grid import expand_grid, load_grid
from collapse_lab.sweep.reproduce import preset_names, resolve_preset

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ROOT / "bench" / "results" / "learned-regime-search.csv"
SEEDS = (2024, 2025, 2026)


@pytest.fixture(scope="module")
def points():
    return expand_grid(load_grid(resolve_preset("ml100k_learned")))


def test_preset_expands_to_the_3_seed_scaling_comparison(points):
    assert "ml100k_learned" in preset_names()
    # vanilla-mean at N = 1, 2, 4, 10; KD, DML, KDEF at N = 2, 4, 10 (N = 1 is the shared single model); 3 seeds
    assert len(points) == 3 * (4 + 3 * 3)
    combos = {(p.config["method"], p.config["n"], p.config["seed"]) for p in points}
    expected = {("vanilla", n, s) for n in (1, 2, 4, 10) for s in SEEDS}
    expected |= {(m, n, s) for m in ("kd", "dml", "kdef") for n in (2, 4, 10) for s in SEEDS}
    assert combos == expected
    assert sum(p.config["n"] for p in points) == 3 * (1 + 4 * 16)  # 195 student-trainings
    assert len({p.name for p in points}) == len(points)


def test_preset_is_the_measured_schedule(points):
    for p in points:
        c = p.config
        assert (c["dataset"], c["fusion"], c["hidden_units"], c["batch_size"], c["lr"]) == (
            "movielens-100k", "mean", [128, 128, 128], 256, 0.002)
        # no x0.1 decay on a plateau: early stopping alone ends a run, at most 20 epochs
        assert (c["lr_decay_factor"], c["patience"], c["max_epochs"]) == (1.0, 2, 20)
        assert (c["embedding_regularizer"], c["net_dropout"], c["batch_norm"]) == (0.01, 0.1, True)
        assert (c["spectra_every"], c["spectra_unit"]) == (1, "epoch")  # C3 over training, from spectra_trace.csv


def test_seed_is_the_outer_axis_so_a_partial_sweep_is_a_complete_comparison(points):
    first = points[: len(points) // 3]
    assert {p.config["seed"] for p in first} == {2024}
    assert {(p.config["method"], p.config["n"]) for p in first} == {
        (p.config["method"], p.config["n"]) for p in points}


def _search_rows():
    with SEARCH.open() as fh:
        return list(csv.DictReader(fh))


def test_search_table_shows_the_preset_leaves_the_bulk_and_cheaper_settings_do_not():
    rows = _search_rows()
    last = [r for r in rows if r["layer"] == "3"]
    chosen = [r for r in last if (r["hidden_units"], r["batch_size"], r["lr"], r["rule"]) ==
              ("128x128x128", "256", "0.002", "patience=2")]
    assert {int(r["seed"]) for r in chosen} == set(SEEDS)
    for r in chosen:  # the committed evidence: every seed's best checkpoint is out of the random bulk
        assert r["left_bulk"] == "True" and float(r["stable_rank_ratio"]) < 0.6
        assert float(r["ka_mp"]) > float(r["ka_mp_baseline"])
    assert any(r["left_bulk"] == "False" for r in last)  # the table also holds settings that stayed in the bulk
    for r in last:
        assert (r["left_bulk"] == "True") == (float(r["stable_rank_ratio"]) < 0.6)


def _bench_module():
    spec = importlib.util.spec_from_file_location("learned_regime", ROOT / "bench" / "learned_regime.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("auc, patience, cap, expected", [
    ([0.70, 0.72, 0.71, 0.715, 0.73], 2, 5, (4, 2)),       # two evaluations without improvement stop at epoch 4
    ([0.70, 0.72, 0.71, 0.73, 0.72, 0.72], 2, 6, (6, 4)),  # an improvement resets the counter
    ([0.70, 0.72, 0.71, 0.715, 0.73], 5, 5, (5, 5)),       # the cap ends the run; best within the cap
    ([0.70, 0.72, 0.71, 0.715, 0.73], 3, 3, (3, 2)),       # a fixed budget of 3 epochs
    ([0.70, 0.7000005, 0.69], 2, 3, (3, 1)),               # an improvement must exceed 1e-6, as in training
])
def test_replay_applies_the_trainers_plateau_rule(auc, patience, cap, expected):
    assert _bench_module().replay(auc, patience, cap) == expected


def test_summarise_replays_a_real_run_like_training_with_that_rule(tmp_path):
    """A 6-epoch run without decay, replayed with patience 1, gives the stop and best epoch (and its spectra) of
    a run trained with patience 1: the replay is what training would have done."""
    from train_fixtures import make_dataset, tiny_config

    from collapse_lab.training.api import train

    data = make_dataset(tmp_path, rows=3000)
    base = tiny_config(data, method="vanilla", n=1, lr_decay_factor=1.0, lr=0.05, max_epochs=6, seed=3)
    long_run = train({**base, "patience": 6}, out_dir=tmp_path / "long").run_dir
    bench = _bench_module()
    rows = bench.summarise(long_run, patiences=[1], budgets=[2, 9], ratio=0.6)
    assert {r["rule"] for r in rows} == {"patience=1", "epochs=2"}  # a budget longer than the run is skipped
    assert {r["layer"] for r in rows} == {1, 2} and all(set(r) == set(bench.COLUMNS) for r in rows)
    stopped = train({**base, "patience": 1}, out_dir=tmp_path / "short")
    replayed = [r for r in rows if r["rule"] == "patience=1"]
    assert {(r["stop_epoch"], r["best_epoch"]) for r in replayed} == {
        (stopped.results["epochs_run"], stopped.results["best_epoch"])}
    trace = bench.read_run(stopped.run_dir)["weights"]
    for r in replayed:
        at = trace[(trace.epoch == r["best_epoch"]) & (trace.layer == r["layer"]) & (trace.metric == "stable_rank")]
        assert r["stable_rank_ratio"] == pytest.approx(float(at.ratio.iloc[0]), abs=1e-4)
        assert r["left_bulk"] == (r["stable_rank_ratio"] < 0.6)


def test_summarise_rejects_runs_with_decay(tmp_path):
    from train_fixtures import make_dataset, tiny_config

    from collapse_lab.errors import UserError
    from collapse_lab.training.api import train

    run = train(tiny_config(make_dataset(tmp_path, rows=1000), method="vanilla", n=1, max_epochs=1),
                out_dir=tmp_path / "r").run_dir
    with pytest.raises(UserError, match=r"expected a single model \(n=1\) trained without decay"):
        _bench_module().summarise(run, patiences=[2], budgets=[], ratio=0.6)
