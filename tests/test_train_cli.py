"""``collapse-lab train``: table and JSON output, and every bad input as a one-line error with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from train_fixtures import TINY, make_dataset

from collapse_lab.cli import cli, main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"), rows=3000)


def _args(dataset, *extra):
    tiny = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    return ["train", f"dataset={dataset}", *tiny, "n=2", *extra]


def test_train_prints_json_and_table(dataset, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(cli, [*_args(dataset, "method=kdef"), "--out", str(out), "--device", "cpu", "--json",
                              "--max-epochs", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    assert payload["summary"] == manifest["results"]["summary"] and payload["status"] == "complete"
    assert set(payload["test"]) == {"ensemble", "0", "1"} and payload["epochs_run"] <= 2
    assert manifest["config"]["max_epochs"] == 2
    # the same run again: refused without a flag, replaced with --overwrite (table output)
    again = runner.invoke(cli, [*_args(dataset, "method=kdef"), "--out", str(out), "--max-steps", "3"])
    assert again.exit_code != 0 and "exists" in str(again.exception)
    res = runner.invoke(cli, [*_args(dataset, "method=vanilla"), "--out", str(out), "--overwrite", "--max-steps", "3",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[1].split() == ["member", "test", "AUC", "test", "logloss"]
    assert [line.split()[0] for line in lines[2:5]] == ["ensemble", "student", "student"]
    assert lines[-1].startswith("mu mean (std)") and lines[-1].split()[-1] == "-"  # vanilla has no EM weights
    assert json.loads((out / "manifest.json").read_text())["results"]["steps_run"] == 3


def test_default_output_directory(dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, [*_args(dataset, "method=dml", "seed=3"), "--max-steps", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "runs" / f"{dataset.name}-dml-mean-n2-s3" / "manifest.json").exists()


def _bad(capsys, argv, logged=False):
    """Run ``main(argv)``: exit code 2 and one ``error:`` line (after the run's log lines when ``logged``)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[-1].startswith("error: ") and [x.startswith("error: ") for x in lines].count(True) == 1, err
    assert logged or len(lines) == 1, err
    return lines[-1]


@pytest.mark.parametrize(("override", "expected"), [
    ("method=kdf", "expected one of dml, kd, kdef, vanilla, got 'kdf'"),
    ("student=cnn", "mlp, pnn, wide_deep, xdeepfm, got 'cnn'"),  # the registered students, sorted
    ("fusion=max", "expected one of mean, sum, concat"),
    ("cons=l3", "expected one of bce, huber, kl, mae, mse"),
    ("n=0", "'n': expected an integer >= 1"),
    ("net_dropout=1.5", "'net_dropout': expected a probability in [0, 1)"),
    ("batch_size=many", "bad value for config key 'batch_size'"),
    ("num_students=3", "unknown config key 'num_students'; valid keys: dataset, data_root, method"),
    ("lr", "expected key=value"),
])
def test_bad_config_values_are_one_line_errors(dataset, tmp_path, capsys, override, expected):
    out = tmp_path / "never"
    err = _bad(capsys, [*_args(dataset, override), "--out", str(out)])
    assert expected in err
    assert not out.exists()  # nothing half-written


def test_bad_inputs_name_what_to_do(dataset, tmp_path, capsys):
    out = tmp_path / "never"
    err = _bad(capsys, ["train", "dataset=no-such-data", "--out", str(out)])
    assert "not prepared" in err and "collapse-lab data prepare no-such-data" in err
    err = _bad(capsys, [*_args(dataset), "--out", str(tmp_path / "nothing"), "--resume"])
    assert "no run to resume" in err
    err = _bad(capsys, [*_args(dataset), "--out", str(tmp_path / "nothing"), "--resume", "--overwrite"])
    assert "--resume and --overwrite exclude each other" in err
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    err = _bad(capsys, [*_args(dataset), "--out", str(tmp_path / "notes"), "--overwrite"])
    assert "not a collapse-lab run directory" in err and (tmp_path / "notes" / "keep.txt").exists()
    config = tmp_path / "bad.yaml"
    config.write_text("method: kdef\nn: [1,\n")
    err = _bad(capsys, ["train", "--config", str(config), "--out", str(out)])
    assert f"{config}: line 3" in err and "invalid YAML" in err
    config.write_text("method: kdef\nhidden: [8]\n")
    err = _bad(capsys, ["train", "--config", str(config), "--out", str(out)])
    assert "unknown config key 'hidden'" in err and "hidden_units" in err
    err = _bad(capsys, ["train", "--config", str(tmp_path / "missing.yaml")])
    assert "config file not found" in err
    err = _bad(capsys, [*_args(dataset), "--out", str(out), "--device", "tpu"])
    assert "unknown device 'tpu'" in err
    if not torch.cuda.is_available():
        err = _bad(capsys, [*_args(dataset), "--out", str(out), "--device", "cuda"])
        assert "no CUDA device" in err
    assert not out.exists()


def test_nonfinite_loss_is_a_one_line_error(dataset, tmp_path, capsys):
    out = tmp_path / "nan"
    err = _bad(capsys, [*_args(dataset, "lr=1e30"), "--out", str(out), "--device", "cpu"], logged=True)
    assert "non-finite loss at step 2 (epoch 1)" in err  # step 1 overflows every weight, step 2 sees it
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "step 2" in manifest["error"]
