"""Spectra during training (spectra_trace.csv): which steps, the values, resume safety, no effect on training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from train_fixtures import make_dataset, tiny_config

from collapse_lab.config import resolve_config
from collapse_lab.errors import UserError
from collapse_lab.io.checkpoint import load_weights
from collapse_lab.spectral import functional as F
from collapse_lab.training.api import _build, train
from collapse_lab.training.spectra import TRACE_COLUMNS, read_trace

CFG = {"method": "kdef", "n": 2, "max_epochs": 3, "patience": 5, "save_every": 1}


class Interrupt(Exception):
    """Raised by a test callback to simulate a kill."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), rows=6000)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    return train(tiny_config(dataset, **CFG), tmp_path_factory.mktemp("runs") / "a", device="cpu", console=False)


def _steps_per_epoch(run):
    return run.manifest["results"]["steps_run"] // run.manifest["results"]["epochs_run"]


def _expected(weights, name):
    """The metrics of one checkpointed matrix, from numpy's SVD and the spectral functions."""
    w = weights[name].double().numpy()
    s = np.linalg.svd(w, compute_uv=False)
    return {"knowledge_abundance": F.knowledge_abundance(s, tau=4.0),
            "knowledge_abundance_mp": F.knowledge_abundance(s, threshold="mp", shape=w.shape),
            "knowledge_abundance_rel": F.knowledge_abundance(s, threshold="rel"),
            "information_abundance": F.information_abundance(s), "effective_rank": F.effective_rank(s),
            "stable_rank": F.stable_rank(s), "sv_max": float(s[0])}


def test_trace_steps_are_init_and_every_epoch_end(run):
    trace = read_trace(run.run_dir)
    assert tuple(trace.columns) == TRACE_COLUMNS
    per = _steps_per_epoch(run)
    assert sorted(trace["step"].unique()) == [0, per, 2 * per, 3 * per]
    assert sorted(trace["epoch"].unique()) == [0, 1, 2, 3]
    names = {("weights", str(k), f"students.{k}.layers.{j}.linear.weight") for k in (0, 1) for j in (0, 1)}
    names |= {("embeddings", "shared", f"embedding.tables.{f['name']}.weight")
              for f in run.manifest["model"]["fields"]}
    for _, at_step in trace.groupby("step"):
        assert set(zip(at_step["target"], at_step["member"], at_step["name"], strict=True)) == names
        assert not at_step.duplicated(["name", "metric"]).any()
    weights = trace[trace["target"] == "weights"]
    assert {"knowledge_abundance", "knowledge_abundance_mp", "knowledge_abundance_rel"} <= set(weights["metric"])
    assert "knowledge_abundance" not in set(trace[trace["target"] == "embeddings"]["metric"])


@pytest.mark.parametrize("epoch", [1, 3])
def test_trace_values_equal_the_spectral_functions_on_the_checkpoint(run, epoch):
    trace = read_trace(run.run_dir)
    weights, meta = load_weights(run.run_dir / "checkpoints" / f"epoch_{epoch:04d}" / "model.safetensors")
    at = trace[trace["step"] == int(meta["step"])]
    assert set(at["epoch"]) == {epoch}
    for name in ("students.1.layers.0.linear.weight", "students.0.layers.1.linear.weight",
                 "embedding.tables.C1.weight"):
        rows = at[at["name"] == name].set_index("metric")
        assert (rows["rows"].iloc[0], rows["cols"].iloc[0]) == tuple(weights[name].shape)
        for metric, value in _expected(weights, name).items():
            if metric.startswith("knowledge") and name.startswith("embedding"):
                continue
            assert rows.at[metric, "value"] == pytest.approx(value, rel=1e-7, abs=1e-12), (name, metric)
        ratio = rows.at["effective_rank", "value"] / rows.at["effective_rank", "baseline"]
        assert rows.at["effective_rank", "ratio"] == pytest.approx(ratio)


def test_step_zero_is_the_initialisation(run):
    trace = read_trace(run.run_dir)
    model = _build(run.config, "cpu")["model"]  # the same seed builds the same initial weights
    init = model.export_state_dict()
    rows = trace[(trace["step"] == 0) & (trace["name"] == "students.0.layers.0.linear.weight")].set_index("metric")
    for metric, value in _expected(init, "students.0.layers.0.linear.weight").items():
        assert rows.at[metric, "value"] == pytest.approx(value, rel=1e-7)


def test_step_unit_records_every_k_steps_and_the_last(dataset, tmp_path):
    out = train(tiny_config(dataset, **{**CFG, "max_epochs": 1, "max_steps": 12, "save_every": None,
                                        "spectra_every": 5, "spectra_unit": "step"}),
                tmp_path / "s", device="cpu", console=False)
    assert sorted(read_trace(out.run_dir)["step"].unique()) == [0, 5, 10, 12]


def test_off_writes_no_trace_and_trace_does_not_change_training(dataset, run, tmp_path):
    off = train(tiny_config(dataset, **CFG, spectra_every=0), tmp_path / "off", device="cpu", console=False)
    assert not (off.run_dir / "spectra_trace.csv").exists()
    pd.testing.assert_frame_equal(pd.read_csv(off.run_dir / "metrics.csv"), pd.read_csv(run.run_dir / "metrics.csv"))


@pytest.mark.parametrize("stale_rows", [False, True])
def test_resume_gives_the_trace_of_an_uninterrupted_run(dataset, run, tmp_path, stale_rows):
    """Killed after epoch 2, resumed: the same rows as the uninterrupted run, none duplicated or missing — also
    when the file holds rows past the saved state (a kill between the trace and the trainer state)."""
    def stop(event, info):
        if event == "epoch_end" and info["epoch"] == 2:
            raise Interrupt

    out = tmp_path / "r"
    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG), out, device="cpu", console=False, callbacks=[stop])
    assert read_trace(out)["epoch"].max() == 2
    if stale_rows:  # rows of steps beyond the saved state (marked -1 here) must be recomputed, not kept
        full = read_trace(run.run_dir)
        full.loc[full["epoch"] == 3, "value"] = -1.0
        full.to_csv(out / "spectra_trace.csv", index=False)
    resumed = train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)
    pd.testing.assert_frame_equal(read_trace(resumed.run_dir), read_trace(run.run_dir))


def test_bad_spectra_keys_are_one_line_errors():
    with pytest.raises(UserError, match="config key 'spectra_unit': expected one of epoch, step, got 'batch'"):
        resolve_config(["spectra_unit=batch"])
    with pytest.raises(UserError, match="config key 'spectra_every': expected an integer >= 0"):
        resolve_config(["spectra_every=-1"])
    with pytest.raises(UserError, match="no such file"):
        read_trace("/nonexistent/run")
