"""Experiment tracking (config key ``tracker``): TensorBoard and MLflow hold exactly the rows of metrics.csv and
spectra_trace.csv, the CSV files are unchanged, a resumed run duplicates no step, missing libraries give a hint."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import yaml
from train_fixtures import make_dataset, tiny_config

from collapse_lab.cli import main
from collapse_lab.config import TrainConfig, config_hash, config_to_dict, resolve_config
from collapse_lab.errors import UserError
from collapse_lab.sweep.grid import run_name
from collapse_lab.tracking import metric_points, normalize_trackers, trace_points
from collapse_lab.training.api import train

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

CFG = {"method": "kdef", "n": 2, "max_epochs": 3, "patience": 5, "probe_rows": 0}
BOTH = ["tensorboard", "mlflow"]


class Interrupt(Exception):
    """Raised by a test callback to simulate a kill."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), rows=3000)


@pytest.fixture(scope="module")
def plain(dataset, tmp_path_factory):
    """The same run with the default tracker (csv only)."""
    return train(tiny_config(dataset, **CFG), tmp_path_factory.mktemp("runs") / "plain", device="cpu",
                 console=False)


@pytest.fixture(scope="module")
def tracked(dataset, tmp_path_factory):
    return train(tiny_config(dataset, **CFG, tracker=BOTH), tmp_path_factory.mktemp("runs") / "tracked",
                 device="cpu", console=False)


def expected_points(run_dir):
    """Sorted ``(tag, step, value)`` built from the CSV files by hand: metric rows -> split/member/metric at their
    step, the final valid+test block (the best checkpoint) -> best/... at the last step, spectra -> value,
    baseline, ratio."""
    metrics = pd.read_csv(run_dir / "metrics.csv", dtype={"member": str})
    final = 2 * int((metrics["split"] == "test").sum())  # the best checkpoint's valid rows, then its test rows
    last_step = int(metrics["step"].iloc[:-final].max())
    out = []
    for i, r in enumerate(metrics.itertuples()):
        best = i >= len(metrics) - final
        out.append((("best/" if best else "") + f"{r.split}/{r.member}/{r.metric}",
                    last_step if best else int(r.step), float(r.value)))
    trace = pd.read_csv(run_dir / "spectra_trace.csv", dtype={"member": str})
    for r in trace.itertuples():
        for suffix, value in (("", r.value), ("_baseline", r.baseline), ("_ratio", r.ratio)):
            if pd.notna(value):
                out.append((f"spectra/{r.name}/{r.metric}{suffix}", int(r.step), float(value)))
    return sorted(out)


def tensorboard_points(run_dir):
    """Every scalar of ``<run>/tensorboard`` read back as the TensorBoard server reads it (the plugin
    EventAccumulator, which applies the purge of a resumed writer to tensor summaries)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import TENSORS, EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={TENSORS: 0})
    acc.Reload()
    out = []
    for tag in acc.Tags()["tensors"]:
        if tag.startswith("config"):
            continue
        out += [(tag, e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
    return sorted(out)


def mlflow_points(run_dir, monkeypatch):
    """Every metric point of the run in ``<run>/mlruns``, and the MLflow run (one per store)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(run_dir / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("collapse-lab")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    out = [(key, m.step, m.value) for key in run.data.metrics for m in client.get_metric_history(run.info.run_id, key)]
    return sorted(out), run


def test_tensorboard_and_mlflow_hold_exactly_the_csv_rows(tracked, monkeypatch):
    expected = expected_points(tracked.run_dir)
    tags = {tag for tag, _, _ in expected}
    assert {"valid/ensemble/auc", "train/ensemble/loss", "train/0/lambda", "train/ensemble/lambda_mean",
            "train/ensemble/mu_std", "best/test/ensemble/auc", "best/valid/1/logloss"} <= tags
    assert any(t.startswith("spectra/embedding.tables.") and t.endswith("/effective_rank_ratio") for t in tags)
    assert tensorboard_points(tracked.run_dir) == expected
    points, run = mlflow_points(tracked.run_dir, monkeypatch)
    assert points == expected
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["method"] == "kdef" and run.data.params["hidden_units"] == "[16, 16]"


def test_trackers_leave_the_csv_files_byte_identical(plain, tracked):
    for name in ("metrics.csv", "spectra_trace.csv"):
        assert (tracked.run_dir / name).read_bytes() == (plain.run_dir / name).read_bytes()
    assert plain.config.tracker == ["csv"] and tracked.config.tracker == ["csv", "tensorboard", "mlflow"]
    assert not (plain.run_dir / "tensorboard").exists() and not (plain.run_dir / "mlruns").exists()


@pytest.mark.parametrize("event, epoch", [("evaluation", 2), ("epoch_end", 2), ("epoch_end", 3)])
def test_resume_duplicates_no_step(dataset, tracked, tmp_path, monkeypatch, event, epoch):
    """Killed in epoch 2 — after its rows reached the trackers but before its state was saved (``evaluation``),
    or after (``epoch_end``) — or after the last epoch's state was saved (nothing left to train: the resumed run
    only re-sends what the trackers dropped), and resumed: the trackers end with the uninterrupted run's points."""
    def stop(name, info):
        if name == event and info["epoch"] == epoch:
            raise Interrupt

    out = tmp_path / "tracked"
    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG, tracker=BOTH), out, device="cpu", console=False, callbacks=[stop])
    partial, run = mlflow_points(out, monkeypatch)
    assert run.info.status == "KILLED" and max(step for _, step, _ in partial) > 0
    train(tiny_config(dataset, **CFG, tracker=BOTH), out, resume=True, device="cpu", console=False)
    expected = expected_points(tracked.run_dir)
    assert expected_points(out) == expected
    assert tensorboard_points(out) == expected
    points, run = mlflow_points(out, monkeypatch)
    assert points == expected and run.info.status == "FINISHED"



def test_changing_only_the_tracker_resumes_and_a_new_backend_gets_every_row(dataset, plain, tmp_path):
    """``tracker`` is not part of the config hash: an interrupted csv-only run resumed with ``tracker=tensorboard``
    continues after its saved epoch (it is not refused, nor trained again from scratch), and the TensorBoard store
    it had never written ends with every point of the uninterrupted run, not only those since the resume."""
    def stop(name, info):
        if name == "epoch_end" and info["epoch"] == 2:
            raise Interrupt

    out = tmp_path / "retracked"
    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG), out, device="cpu", console=False, callbacks=[stop])
    hash_before = json.loads((out / "manifest.json").read_text())["config_hash"]
    epochs = []
    resumed = train(tiny_config(dataset, **CFG, tracker="tensorboard"), out, resume=True, device="cpu",
                    console=False, callbacks=[lambda name, info: name == "epoch_end" and epochs.append(info["epoch"])])
    assert epochs == [3]  # only the epoch left: resumed, not started over
    assert (out / "metrics.csv").read_bytes() == (plain.run_dir / "metrics.csv").read_bytes()
    assert tensorboard_points(out) == expected_points(plain.run_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config_hash"] == hash_before
    assert manifest["config"]["tracker"] == ["csv", "tensorboard"] == resumed.config.tracker
    assert yaml.safe_load((out / "config.yaml").read_text())["tracker"] == ["csv", "tensorboard"]
    assert "tracker changed since the last attempt: ['csv'] -> ['csv', 'tensorboard'] (tensorboard sent every " \
           "row from the start)" in (out / "train.log").read_text()
    with pytest.raises(UserError, match=r"cannot resume with a different config \(changed: lr\)"):
        train(tiny_config(dataset, **CFG, lr=0.5, tracker="tensorboard"), out, resume=True, device="cpu",
              console=False)


def test_tracker_key_is_normalised_and_checked():
    assert resolve_config(["tracker=tensorboard"]).tracker == ["csv", "tensorboard"]
    assert resolve_config(["tracker=[mlflow,csv,mlflow]"]).tracker == ["csv", "mlflow"]
    with pytest.raises(UserError, match="config key 'tracker': expected one of csv, tensorboard, mlflow or a list "
                                        "of them, got 'wandb'"):
        resolve_config(["tracker=[csv,wandb]"])
    with pytest.raises(UserError, match="config key 'tracker': expected one of .* got 3"):
        resolve_config({"tracker": 3})


@pytest.mark.parametrize("name, module, extra", [("tensorboard", "tensorboard", "tb"), ("mlflow", "mlflow", "mlflow")])
def test_missing_library_is_a_one_line_hint(monkeypatch, capsys, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import and find_spec both see it as not installed
    with pytest.raises(UserError) as err:
        normalize_trackers(["csv", name])
    assert str(err.value) == (f"tracker {name!r} needs the {module} package, which is not installed: "
                              f"pip install 'collapse-lab[{extra}]'")
    with pytest.raises(SystemExit) as exit_:
        main(["train", f"tracker={name}", "dataset=/nonexistent"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {err.value}"]


def test_tracker_changes_neither_the_config_hash_nor_sweep_run_names():
    # the values of main before the key existed: old runs resume, old sweeps keep their run names
    assert config_hash(TrainConfig()) == "f7f5096fbb0530249cccbc5a9332129fd30fb2615a9ca7e4fd719f20c2269a84"
    assert config_hash(resolve_config(["tracker=[tensorboard,mlflow]"])) == config_hash(TrainConfig())
    for tracker in ("csv", "tensorboard"):
        cfg = config_to_dict(resolve_config(["method=kdef", "n=4", f"tracker={tracker}"]))
        assert run_name(cfg) == "kdef-mean-n4-s2024-ad3b9f66"


def test_points_skip_missing_values_and_sanitise_tags():
    assert metric_points([(1, 5, "train", "ensemble", "mu_mean", float("nan"))]) == []
    assert trace_points([(3, 1, "shared", "embeddings", "embedding.tables.a|b.weight", 5, 4, "stable_rank", 2.5,
                          float("nan"), float("nan"))]) == [("spectra/embedding.tables.a_b.weight/stable_rank", 2.5, 3)]


def test_sweep_sends_every_run_to_the_tracker_under_the_same_run_names(dataset, tmp_path):
    import yaml

    from collapse_lab.sweep.runner import run_sweep

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"name": "t", "base": tiny_config(dataset, max_steps=2, probe_rows=0),
                                    "grid": {"method": ["vanilla", "kdef"]}}))
    plain = run_sweep(grid, tmp_path / "plain", dry_run=True)
    report = run_sweep(grid, tmp_path / "sweep", overrides=["tracker=tensorboard"], device="cpu", progress=False)
    assert sorted(report.completed) == sorted(plain.runs) and len(report.runs) == 2
    for name in report.runs:
        run_dir = tmp_path / "sweep" / "runs" / name
        assert tensorboard_points(run_dir) == expected_points(run_dir)


def test_a_tracker_that_fails_to_open_on_resume_leaves_config_yaml_as_it_was(dataset, tmp_path, monkeypatch):
    """config.yaml names the new trackers only once they opened: a backend that fails to start (a full disk, an
    unreachable server) leaves the run's files describing the last attempt, which a plain resume can continue."""
    import collapse_lab.training.api as api

    def stop(name, info):
        if name == "epoch_end" and info["epoch"] == 1:
            raise Interrupt

    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG), out, device="cpu", console=False, callbacks=[stop])
    before = (out / "config.yaml").read_text()

    def broken(*args, **kwargs):
        raise OSError("tensorboard store unreachable")

    monkeypatch.setattr(api, "TrackingSession", broken)
    with pytest.raises(OSError, match="unreachable"):
        train(tiny_config(dataset, **CFG, tracker="tensorboard"), out, resume=True, device="cpu", console=False)
    assert (out / "config.yaml").read_text() == before
    assert yaml.safe_load(before)["tracker"] == ["csv"]
    assert json.loads((out / "manifest.json").read_text())["config"]["tracker"] == ["csv"]
