"""`collapse-lab spectrum`: summary, files, --json, and one-line errors (exit 2, nothing written) on bad input."""

from __future__ import annotations

import json
import pickle

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from spectral_fixtures import make_run, model_tensors

from collapse_lab.cli import cli, main


class Arbitrary:
    """A class a weights-only unpickler must refuse."""

    def __init__(self) -> None:
        self.w = torch.zeros(3, 3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("spectral_cli"), nan_rows=(0,))


def test_cli_summary_and_default_output_dir(run):
    result = CliRunner().invoke(cli, ["spectrum", str(run)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "knowledge abundance" in out and "information abundance" in out and "probe activations" in out
    assert "layer 0" in out and "user" in out and "input" in out
    assert "students.0.layers.0: 1 row(s) with NaN/Inf excluded" in out
    df = pd.read_csv(run / "spectrum" / "spectrum.csv")
    ka = df[(df["metric"] == "knowledge_abundance") & (df["name"] == "students.0.layers.1.linear.weight")]
    assert ka["value"].item() == 0.5
    assert (run / "spectrum" / "singular_values.npz").is_file()


def test_cli_json_options_and_out(run, tmp_path):
    out = tmp_path / "spec"
    result = CliRunner().invoke(cli, ["spectrum", str(run), "--targets", "weights", "--tau", "2.5", "--exact",
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["out_dir"] == str(out)
    rows = pd.DataFrame(payload["rows"])
    assert set(rows["target"]) == {"weights"}
    ka = rows[(rows["metric"] == "knowledge_abundance") & (rows["name"] == "students.1.layers.1.linear.weight")]
    assert ka["value"].item() == 0.25  # σ = (3, 2, 1, 0.5): one of four above τ = 2.5
    assert ka["convention"].item().endswith("method=tsqr;threshold=abs;tau=2.5;positive=sv>floor")
    assert (out / "spectrum.csv").is_file()


def test_cli_weighting_and_field_dims(run, tmp_path):
    result = CliRunner().invoke(cli, ["spectrum", str(run), "--targets", "embeddings", "--weighting", "trained",
                                      "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    torch.save({"embedding.embedding.weight": torch.tensor([[1.0, 0], [0, 1], [1, 1], [2, 2], [1, 1]])},
               tmp_path / "me.pth")
    result = CliRunner().invoke(cli, ["spectrum", str(tmp_path / "me.pth"), "--field-dims", "3,2", "--json"])
    assert result.exit_code == 0, result.output
    rows = pd.DataFrame(json.loads(result.output)["rows"])
    ia = rows[rows["metric"] == "information_abundance"].set_index("name")["value"]
    assert ia["embedding.embedding.weight:field0"] == pytest.approx(1.577350, abs=1e-6)
    assert (tmp_path / "me_spectrum" / "spectrum.csv").is_file()


def _fails(argv, capsys, match):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, run):
    _fails(["spectrum", str(tmp_path / "nope.safetensors")], capsys, "nope.safetensors: no such file")
    good = tmp_path / "good.safetensors"
    save_file(model_tensors(), str(good))
    data = good.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    _fails(["spectrum", str(tmp_path / "trunc.safetensors")], capsys, "trunc.safetensors: not a readable safetensors")
    torch.save({"w": torch.ones(4, 4)}, tmp_path / "ok.pt")
    blob = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) - 40])
    _fails(["spectrum", str(tmp_path / "cut.pt")], capsys, "cut.pt: not a readable torch checkpoint")
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01garbage" * 7)
    err = _fails(["spectrum", str(tmp_path / "junk.bin")], capsys, "junk.bin: refused by torch.load(weights_only=True)")
    assert "not a plain tensor checkpoint" in err and "weights_only=False" not in err
    torch.save({"model": Arbitrary()}, tmp_path / "evil.pt")
    err = _fails(["spectrum", str(tmp_path / "evil.pt")], capsys, "evil.pt: refused")
    assert "would import and run arbitrary code" in err and "Arbitrary" in err
    assert "not a plain tensor checkpoint" in err and "weights_only=False" not in err
    (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"x": Arbitrary()}))
    _fails(["spectrum", str(tmp_path / "legacy.pth")], capsys, "legacy.pth: refused")
    torch.save({"b": torch.zeros(3)}, tmp_path / "vec.pt")
    _fails(["spectrum", str(tmp_path / "vec.pt")], capsys, "no 2-D tensor found; found: b float32[3]")
    _fails(["spectrum", str(run), "--weighting", "tfidf"], capsys, "unknown weighting 'tfidf'")
    _fails(["spectrum", str(run), "--targets", "grads"], capsys, "unknown target(s) 'grads'")
    _fails(["spectrum", str(run), "--field-dims", "3,x"], capsys, "--field-dims: expected comma-separated integers")
    (tmp_path / "x.txt").write_text("hi")
    _fails(["spectrum", str(tmp_path / "x.txt")], capsys, "unknown tensor file type '.txt'")
    for name in ("nope", "trunc", "cut", "junk", "evil", "legacy", "vec", "x"):  # nothing half-written
        assert not (tmp_path / f"{name}_spectrum").exists()


def test_broken_run_directory(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "probe.safetensors").unlink()
    _fails(["spectrum", str(run)], capsys, "probe.safetensors: no such file")
    _fails(["spectrum", str(run), "--checkpoint", "epoch_0001"], capsys, "no checkpoint named 'epoch_0001'")
    (run / "manifest.json").write_text("{not json")
    _fails(["spectrum", str(run)], capsys, "manifest.json: line 1: invalid JSON")
    assert not (run / "spectrum").exists()
