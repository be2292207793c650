"""analyze() on an in-memory nn.Module or state dict: the same rows as the file round trip, no models import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from spectral_fixtures import KA, model_tensors, tables, with_singular_values

from collapse_lab.errors import UserError
from collapse_lab.spectral import analyze


def _value(df, name, metric):
    sel = (df["name"] == name) & (df["metric"] == metric)
    assert sel.sum() == 1, (name, metric)
    return df.loc[sel, "value"].item()


def test_state_dict_gives_the_rows_of_its_checkpoint_file(tmp_path):
    sd = model_tensors()
    torch.save(sd, tmp_path / "model.pt")
    from_file = analyze(tmp_path / "model.pt", baseline_draws=2)
    in_memory = analyze(sd, baseline_draws=2)
    assert in_memory.attrs["kind"] == "state_dict" and set(in_memory["source"]) == {"state_dict"}
    cols = ["target", "member", "name", "rows", "cols", "convention", "metric", "value", "baseline"]
    pd.testing.assert_frame_equal(in_memory[cols], from_file[cols])
    for (k, j), ka in KA.items():
        assert _value(in_memory, f"students.{k}.layers.{j}.linear.weight", "knowledge_abundance") == ka


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.user_embedding = torch.nn.Embedding(60, 4)
        self.towers = torch.nn.ModuleList([torch.nn.Linear(8, 6)])


def test_module_and_numpy_state_dict_known_values():
    """σ(fc) = (10, 9, 5, 4, 3, 0.5): KA(τ=4) = 3/6, IA = Σσ/σ₁ = 3.15; σ(user table) = (3, 1): IA = 4/3."""
    m = _Tiny()
    with torch.no_grad():
        m.towers[0].weight.copy_(torch.tensor(with_singular_values(6, 8, (10, 9, 5, 4, 3, 0.5), 1)))
        m.user_embedding.weight.copy_(torch.tensor(tables()["user"]))
    df = analyze(m, baseline_draws=2)
    assert df.attrs["kind"] == "state_dict" and set(df["source"]) == {"module"}
    assert set(zip(df["target"], df["member"], df["name"], strict=True)) == {
        ("weights", "0", "towers.0.weight"), ("embeddings", "shared", "user_embedding.weight")}
    assert _value(df, "towers.0.weight", "knowledge_abundance") == 0.5
    assert _value(df, "towers.0.weight", "information_abundance") == pytest.approx(3.15, rel=1e-6)
    assert _value(df, "user_embedding.weight", "information_abundance") == pytest.approx(4 / 3, rel=1e-6)
    as_numpy = analyze({"model": {k: v.numpy() for k, v in m.state_dict().items()}}, baseline_draws=2)
    np.testing.assert_array_equal(as_numpy["value"].to_numpy(), df["value"].to_numpy())


@pytest.mark.parametrize("obj, message", [
    (42, "expected a path, an nn.Module or a state dict, got a int"),
    ({}, "the state_dict holds no tensor"),
    ({"w": torch.ones(3)}, "state_dict: no 2-D tensor found"),
])
def test_bad_in_memory_inputs(obj, message):
    with pytest.raises(UserError, match=message):
        analyze(obj)


def test_in_memory_analysis_imports_no_models_or_training_code():
    code = ("import sys, torch; from collapse_lab.spectral import analyze; "
            "analyze(torch.nn.Linear(8, 6), baseline_draws=1); "
            "bad = sorted(m for m in sys.modules if m.startswith(('collapse_lab.models', 'collapse_lab.training', "
            "'collapse_lab.strategies'))); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bad_dataset_path_in_a_run_manifest_names_the_manifest(tmp_path):
    """The checks after discovery (shared by files, runs and in-memory inputs) still see the run directory."""
    import json

    from spectral_fixtures import make_run

    run = make_run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["dataset"]["path"] = 5
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=rf"^{run / 'manifest.json'}: dataset.path must be a directory path, got 5"):
        analyze(run)
    with pytest.raises(UserError, match=rf"^{run / 'manifest.json'}: dataset.path must be"):
        analyze(run / "checkpoints" / "best" / "model.safetensors")  # a file inside the run reads its manifest
