"""One short KDEF run on synthetic data, inspected file by file; determinism, resume, NaN stop, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from train_fixtures import make_dataset, tiny_config

from collapse_lab.config import config_hash, resolve_config
from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
from collapse_lab.errors import UserError
from collapse_lab.io.checkpoint import file_sha256, load_trainer_state, load_weights
from collapse_lab.models import build_ensemble
from collapse_lab.training.api import train
from collapse_lab.training.delong import delong_covariance
from collapse_lab.training.evaluation import evaluate, predict
from collapse_lab.training.probe import probe_indices
from collapse_lab.utils.seed import derive_seeds

CFG = {"method": "kdef", "n": 2, "max_epochs": 3}


class Interrupt(Exception):
    """Raised by a test callback to simulate an interruption."""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    return train(tiny_config(dataset, **CFG), tmp_path_factory.mktemp("runs") / "a", device="cpu", console=False)


def _load_model(run, name="best"):
    cfg = run.config
    model = build_ensemble(ProcessedDataset(cfg.dataset).feature_map, num_students=cfg.n,
                           embedding_dim=cfg.embedding_dim, hidden_units=cfg.hidden_units,
                           net_dropout=cfg.net_dropout, fusion=cfg.fusion, seed=123)  # different init on purpose
    weights, meta = load_weights(run.run_dir / "checkpoints" / name / "model.safetensors")
    model.import_state_dict(weights)
    return model.eval(), meta


def _same_tensors(a, b):
    """Same tensors and metadata (file bytes differ: safetensors orders metadata keys by a hash map)."""
    (ta, ma), (tb, mb) = load_weights(a), load_weights(b)
    return ma == mb and ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_run_directory_holds_the_contract_files(run):
    files = {p.relative_to(run.run_dir).as_posix() for p in run.run_dir.rglob("*") if p.is_file()}
    assert files == {"config.yaml", "manifest.json", "metrics.csv", "train.log", "probe.safetensors",
                     "spectra_trace.csv", "checkpoints/last/trainer_state.pt", "checkpoints/best/model.safetensors",
                     "checkpoints/last/model.safetensors"}
    stored = yaml.safe_load((run.run_dir / "config.yaml").read_text())
    assert resolve_config(stored) == run.config
    assert "valid AUC" in (run.run_dir / "train.log").read_text()


def test_manifest_records_provenance_model_and_results(run, dataset):
    m = json.loads((run.run_dir / "manifest.json").read_text())
    assert (m["schema_version"], m["kind"], m["status"], m["error"]) == (1, "collapse-lab-run", "complete", None)
    assert m["config"]["n"] == 2 and m["config_hash"] == config_hash(run.config)
    assert m["seeds"] == {"run": 2024, "students": derive_seeds(2024, 2)}
    assert m["dataset"]["rows"] == {"train": 9600, "valid": 1200, "test": 1200}
    assert m["dataset"]["hash"] == json.loads((dataset / "meta.json").read_text())["content_hash"]
    weights, _ = load_weights(run.run_dir / "checkpoints/best/model.safetensors")
    for f in m["model"]["fields"]:
        assert list(weights[f["table"]].shape) == f["shape"] == [22, 4]
    for layer in m["model"]["hidden_layers"]:
        assert list(weights[layer["weight"]].shape) == layer["shape"]
    (best,) = m["checkpoints"]
    assert best["name"] == "best" and best["sha256"] == file_sha256(run.run_dir / best["path"])
    assert best["epoch"] == m["results"]["best_epoch"]
    # the restored best weights reproduce the validation metrics measured when they were saved
    assert best["metrics"]["valid"] == m["results"]["valid"]
    assert m["probe"]["rows"] == 64 and m["probe"]["sha256"] == file_sha256(run.run_dir / "probe.safetensors")
    s = m["results"]["summary"]
    students = [m["results"]["test"][k]["auc"] for k in ("0", "1")]
    assert s["best_student_auc"] == max(students) and s["worst_student_auc"] == min(students)
    assert s["spread"] == pytest.approx(max(students) - min(students), abs=1e-15)
    assert s["gap"] == pytest.approx(m["results"]["test"]["ensemble"]["auc"] - max(students), abs=1e-15)
    assert s["student_auc_sd"] == pytest.approx(abs(students[0] - students[1]) / 2 ** 0.5, abs=1e-15)
    assert 0 < s["student_auc_diff_se"] < 0.1  # DeLong SE of the two students' AUC difference on 1,200 test rows


def _check_plateau_rule(df, lr0):
    """FuxiCTR's rule by hand: lr x 0.1 (floor 1e-6) after each evaluation not beating the best by > 1e-6."""
    auc = df[(df.split == "valid") & (df.member == "ensemble") & (df.metric == "auc")].drop_duplicates("step")
    lrs = df[(df.split == "train") & (df.metric == "lr")].sort_values("step")["value"].tolist()
    expected, lr, best, decays = [], lr0, -np.inf, 0
    for value in auc.sort_values("step")["value"]:
        expected.append(lr)
        if value > best + 1e-6:
            best = value
        else:
            lr, decays = max(lr * 0.1, 1e-6), decays + 1
    assert lrs == pytest.approx(expected, rel=1e-12)
    return decays


def test_metrics_csv_is_tidy_and_follows_the_plateau_rule(run):
    df = pd.read_csv(run.run_dir / "metrics.csv", dtype={"member": str})
    assert list(df.columns) == ["epoch", "step", "split", "member", "metric", "value"]
    epochs = run.manifest["results"]["epochs_run"]
    train_rows = df[df.split == "train"]
    assert sorted(train_rows.epoch.unique()) == list(range(1, epochs + 1))
    for e in range(1, epochs + 1):
        rows = train_rows[train_rows.epoch == e].set_index(["member", "metric"])["value"]
        assert {"loss", "task_loss", "kd_loss", "mutual_loss", "reg_loss", "lr"} <= set(rows["ensemble"].index)
        # examination weights: softmin over N = 2 sums to 1 per batch; the one peer gets mu = 1 exactly
        assert rows[("0", "lambda")] + rows[("1", "lambda")] == pytest.approx(1.0, abs=1e-6)
        assert rows[("ensemble", "lambda_mean")] == pytest.approx(0.5, abs=1e-6)
        assert rows[("ensemble", "mu_mean")] == pytest.approx(1.0, abs=1e-6)
        assert rows[("ensemble", "mu_std")] == pytest.approx(0.0, abs=1e-6)
        assert rows[("ensemble", "loss")] == pytest.approx(
            rows[("ensemble", "task_loss")] + rows[("ensemble", "kd_loss")] + rows[("ensemble", "mutual_loss")]
            + rows[("ensemble", "reg_loss")], rel=1e-5)
    _check_plateau_rule(df, lr0=1e-2)
    test = df[df.split == "test"]
    assert set(test.epoch) == {run.manifest["results"]["best_epoch"]}
    for member, values in run.test.items():
        for metric, value in values.items():
            (row,) = test[(test.member == member) & (test.metric == metric)]["value"]
            assert row == value


def test_best_checkpoint_round_trip_reproduces_test_metrics(run):
    model, meta = _load_model(run)
    assert meta["name"] == "best" and int(meta["epoch"]) == run.manifest["results"]["best_epoch"]
    split = ProcessedDataset(run.config.dataset).split("test")
    metrics = evaluate(model, BatchIterator(split, 100), split="test")  # other batch size, same eval-mode numbers
    for member, values in run.test.items():
        assert metrics[member]["auc"] == pytest.approx(values["auc"], abs=1e-6)
        assert metrics[member]["logloss"] == pytest.approx(values["logloss"], abs=1e-6)
    # the stored noise figure is DeLong's SE of the two students' AUC difference on these predictions
    labels, logits, _ = predict(model, BatchIterator(split, 100))
    _, cov = delong_covariance(labels, logits)
    se = (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) ** 0.5
    assert run.manifest["results"]["summary"]["student_auc_diff_se"] == pytest.approx(se, rel=1e-5)
    # and back out again: export -> import into the batched form gives the same logits
    batched = build_ensemble(ProcessedDataset(run.config.dataset).feature_map, num_students=2, embedding_dim=4,
                             hidden_units=(16, 16), form="batched", seed=5)
    batched.import_state_dict(model.export_state_dict())
    ids = torch.from_numpy(np.asarray(split.ids[:50], dtype=np.int64))
    with torch.no_grad():
        assert torch.allclose(batched.eval()(ids)["logits"], model(ids)["logits"], atol=1e-5)


def test_probe_holds_activations_of_the_best_model(run):
    from safetensors.torch import load_file

    probe = load_file(run.run_dir / "probe.safetensors")
    assert set(probe) == {"input", "indices"} | {f"students.{k}.layers.{j}" for k in range(2) for j in range(2)}
    np.testing.assert_array_equal(probe["indices"].numpy(), probe_indices(1200, 64, 2024))
    assert probe["input"].shape == (64, 16) and probe["students.1.layers.1"].shape == (64, 16)
    model, _ = _load_model(run)
    split = ProcessedDataset(run.config.dataset).split("valid")
    ids = torch.from_numpy(np.asarray(split.ids[probe["indices"].numpy()], dtype=np.int64))
    with torch.no_grad():
        out = model(ids, return_hidden=True)
    torch.testing.assert_close(probe["input"], out["input"])
    for name, act in out["hidden"].items():
        torch.testing.assert_close(probe[name], act)
        assert float(act.min()) >= 0.0  # post-ReLU


def test_same_config_and_seed_give_identical_metrics(run, dataset, tmp_path):
    again = train(tiny_config(dataset, **CFG), tmp_path / "b", device="cpu", console=False)
    assert (again.run_dir / "metrics.csv").read_bytes() == (run.run_dir / "metrics.csv").read_bytes()
    assert _same_tensors(again.run_dir / "checkpoints/best/model.safetensors",
                         run.run_dir / "checkpoints/best/model.safetensors")


def _interrupted_after_epoch_one(dataset, out):
    """A run of CFG stopped by an exception at the end of its first epoch (its checkpoint pair saved)."""
    def stop_after_first_epoch(event, info):
        if event == "epoch_end" and info["epoch"] == 1:
            raise Interrupt("simulated interruption")

    with pytest.raises(Interrupt):
        train(tiny_config(dataset, **CFG), out, device="cpu", console=False, callbacks=[stop_after_first_epoch])


def test_resume_after_epoch_one_ends_exactly_like_an_uninterrupted_run(run, dataset, tmp_path):
    out = tmp_path / "c"
    _interrupted_after_epoch_one(dataset, out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "failed" and "stopped after epoch 1" in m["error"]
    state = load_trainer_state(out / "checkpoints/last/trainer_state.pt")  # weights_only=True
    assert state["epoch"] == 1 and state["step"] == 38 and isinstance(state["rng"]["torch"], torch.Tensor)
    with pytest.raises(UserError, match="cannot resume with a different config.*seed"):
        train(tiny_config(dataset, **CFG, seed=7), out, resume=True, device="cpu", console=False)
    # a dataset prepared again (another content hash) since the run started is refused, and nothing is lost
    original = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(original.replace(m["dataset"]["hash"], "0" * 12))
    with pytest.raises(UserError, match=r"cannot resume: dataset .* changed since the run started \(content hash "
                                        r"0{12} -> "):
        train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)
    (out / "manifest.json").write_text(original)
    resumed = train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)
    assert resumed.manifest["status"] == "complete"
    assert (out / "metrics.csv").read_bytes() == (run.run_dir / "metrics.csv").read_bytes()
    assert _same_tensors(out / "checkpoints/best/model.safetensors", run.run_dir / "checkpoints/best/model.safetensors")
    assert _same_tensors(out / "probe.safetensors", run.run_dir / "probe.safetensors")
    # resuming a complete run returns it unchanged
    assert train(None, out, resume=True, device="cpu", console=False).summary == resumed.summary


def test_resume_accepts_the_hash_a_run_was_created_with(run, dataset, tmp_path):
    """Runs created under an older config hashing scheme (manifest and trainer state agree on it, the config is
    unchanged) still resume; a trainer state with a hash the run never had is refused."""
    out = tmp_path / "old"
    _interrupted_after_epoch_one(dataset, out)
    state_path = out / "checkpoints/last/trainer_state.pt"
    state = load_trainer_state(state_path)
    manifest = json.loads((out / "manifest.json").read_text())
    torch.save({**state, "config_hash": "f" * 64}, state_path)
    with pytest.raises(UserError, match="trainer state does not belong to this config"):
        train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)
    (out / "manifest.json").write_text(json.dumps({**manifest, "config_hash": "f" * 64}))
    resumed = train(tiny_config(dataset, **CFG), out, resume=True, device="cpu", console=False)
    assert (out / "metrics.csv").read_bytes() == (run.run_dir / "metrics.csv").read_bytes()
    assert resumed.manifest["status"] == "complete"


def test_nan_loss_stops_names_the_step_and_keeps_the_last_good_checkpoint(dataset, tmp_path):
    def explode(event, info):
        if event == "epoch_end" and info["epoch"] == 1:
            for group in info["trainer"].optimizer.param_groups:
                group["lr"] = 1e30  # the next Adam step overflows every weight

    out = tmp_path / "nan"
    with pytest.raises(UserError, match=r"non-finite loss at step \d+ \(epoch 2\)") as info:
        train(tiny_config(dataset, method="vanilla", n=2, max_epochs=3), out, device="cpu", console=False,
              callbacks=[explode])
    assert 38 < int(str(info.value).split("step ")[1].split()[0]) <= 40  # the 1st or 2nd step after the blow-up
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "failed" and "non-finite loss at step" in m["error"]
    (best,) = m["checkpoints"]
    assert best["epoch"] == 1 and best["sha256"] == file_sha256(out / best["path"])
    weights, _ = load_weights(out / best["path"])
    assert all(bool(torch.isfinite(t.float()).all()) for t in weights.values())


def test_step_evaluation_periodic_checkpoints_and_step_cap(dataset, tmp_path):
    result = train(tiny_config(dataset, method="dml", n=2, max_epochs=2, eval_every_steps=1, save_every=1,
                               probe_rows=0, patience=100), tmp_path / "steps", device="cpu", console=False)
    df = pd.read_csv(result.run_dir / "metrics.csv", dtype={"member": str})
    valid_steps = sorted(df[(df.split == "valid") & (df.metric == "auc") & (df.member == "ensemble")].step.unique())
    assert valid_steps == list(range(1, 77))  # 2 epochs x 38 steps, evaluated after every step
    assert _check_plateau_rule(df, lr0=1e-2) >= 1  # 76 evaluations of a noisy validation AUC do hit plateaus
    names = [c["name"] for c in result.manifest["checkpoints"]]
    assert names == ["best", "epoch_0001", "epoch_0002"] and result.manifest["probe"] is None
    last = df[(df.split == "valid") & (df.step == 76) & (df.metric == "auc") & (df.member == "ensemble")]["value"]
    assert result.manifest["checkpoints"][2]["metrics"]["valid"]["ensemble"]["auc"] == last.iloc[0]
    assert not (result.run_dir / "probe.safetensors").exists()
    capped = train(tiny_config(dataset, method="kd", n=2, max_steps=5), tmp_path / "cap", device="cpu",
                   console=False)
    assert (capped.results["steps_run"], capped.results["epochs_run"], capped.results["best_epoch"]) == (5, 1, 1)


def test_existing_output_directory_is_refused_unless_overwrite(run, dataset):
    before = (run.run_dir / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="exists; pass --resume .* or --overwrite"):
        train(tiny_config(dataset, **CFG), run.run_dir, device="cpu", console=False)
    assert (run.run_dir / "manifest.json").read_bytes() == before


def test_batched_form_and_the_package_level_entry_point(dataset, tmp_path):
    import collapse_lab
    import collapse_lab.training.api  # noqa: F401  (the package has its own name: collapse_lab.train stays the function)

    assert callable(collapse_lab.train) and collapse_lab.train.__module__ == "collapse_lab"

    result = collapse_lab.train(tiny_config(dataset, method="kdef", n=3, form="batched", max_steps=3),
                                out_dir=tmp_path / "batched", device="cpu", console=False)
    assert result.manifest["form"] == "batched" and result.manifest["status"] == "complete"
    from safetensors.torch import load_file

    probe = load_file(tmp_path / "batched" / "probe.safetensors")
    assert probe["students.2.layers.1"].shape == (64, 16)
    weights, _ = load_weights(tmp_path / "batched" / "checkpoints/best/model.safetensors")
    assert weights["students.2.layers.0.linear.weight"].shape == (16, 16)  # canonical names in both forms
