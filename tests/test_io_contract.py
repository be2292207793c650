"""The run-directory contract (collapse_lab/io/contract.py, docs/architecture.md §4 and §6): tensor names, the
matrices a manifest lists, the student summary, and an (out, in, 1) weight analysed as its (out, in) matrix."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from spectral_fixtures import KA, make_run, with_singular_values

from collapse_lab.errors import UserError
from collapse_lab.io import contract as C


def test_tensor_names_round_trip():
    assert C.hidden_weight(3, 1) == "students.3.layers.1.linear.weight"
    assert C.parse_hidden_weight("students.3.layers.1.linear.weight") == (3, 1)
    assert C.activation_name(0, 2) == "students.0.layers.2" and C.parse_activation("students.0.layers.2") == (0, 2)
    assert C.parse_activation("students.0.layers.2.linear.weight") is None
    assert C.parse_embedding_table(C.embedding_table("a.b")) == "a.b"
    assert C.parse_student_tensor(C.student_tensor(7, "cross", 0, "weight")) == (7, "cross.0.weight")
    assert C.parse_student_tensor("embedding.tables.x.weight") is None


def test_model_matrices_of_an_old_and_a_new_manifest():
    old = {"model": {"hidden_layers": [
        {"member": 1, "layer": 0, "name": "students.1.layers.0", "weight": "students.1.layers.0.linear.weight",
         "shape": [6, 8]}]}}
    (m,) = C.model_matrices(old)
    assert (m.member, m.layer, m.weight, m.shape, m.kind, m.label, m.activation) == (
        1, 0, "students.1.layers.0.linear.weight", (6, 8), "linear", "mlp.0", "students.1.layers.0")
    new = {"model": {"hidden_layers": [
        {"member": 0, "layer": 2, "weight": "students.0.cin.0.weight", "shape": [5, 12, 1], "kind": "cross",
         "label": "cin.0", "name": None}]}}
    (m,) = C.model_matrices(new)
    assert (m.kind, m.label, m.activation, m.shape, m.matrix_shape) == ("cross", "cin.0", None, (5, 12, 1), (5, 12))
    bad = {"model": {"hidden_layers": [{"member": 0, "weight": "w", "kind": "conv"}]}}
    with pytest.raises(UserError, match="kind 'conv' not in linear, cross, attention, embedding"):
        C.model_matrices(bad, "run/manifest.json")
    with pytest.raises(UserError, match="missing key 'model.hidden_layers'"):
        C.model_matrices({"model": {}})


def test_student_summary_by_hand():
    split = {"ensemble": {"auc": 0.80}, "0": {"auc": 0.70}, "1": {"auc": 0.76}, "2": {"auc": 0.74}}
    s = C.student_summary(split)
    assert (s["best_student"], s["worst_student"]) == (1, 0)
    assert math.isclose(s["spread"], 0.06) and math.isclose(s["gap"], 0.04)
    assert math.isclose(s["student_auc_sd"], 0.03055050463303893)  # sd(0.70, 0.76, 0.74), ddof = 1
    s = C.student_summary({"ensemble": {"auc": 0.8}, "1": {"auc": 0.7}}, n=2)  # student 0 missing: NaN, ignored
    assert (s["best_student"], s["worst_student"], math.isnan(s["student_auc_sd"])) == (1, 1, True)
    assert C.student_summary({"ensemble": {"auc": 0.8}}, n=0)["best_student"] is None


def test_run_status_and_one_reader(tmp_path):
    run = make_run(tmp_path)
    assert C.run_status(run) == "complete" and C.run_status(tmp_path / "nope") == "missing"
    data = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**data, "schema_version": 7}))
    with pytest.raises(UserError, match="schema_version 7 is not supported"):
        C.read_manifest(run)
    assert C.run_status(run) == "complete"  # the sweep's bookkeeping only needs the status
    (run / "manifest.json").write_text("{")
    assert C.run_status(run) == "corrupt"


def test_spectrum_carries_kind_and_label_and_analyses_an_out_in_1_weight(tmp_path):
    """A run whose manifest lists a cross weight stored as (out, in, 1): the spectrum of its (out, in) matrix has the
    singular values it was built with, and spectrum.csv names its kind and label."""
    from collapse_lab.spectral import analyze, load_singular_values

    run = make_run(tmp_path, probe=False)
    sigma = (7.0, 5.0, 3.0, 1.0)
    w = with_singular_values(4, 6, sigma, seed=5)
    path = run / "checkpoints" / "best" / "model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    tensors["students.0.cin.0.weight"] = torch.tensor(w, dtype=torch.float32).unsqueeze(-1)  # (4, 6, 1)
    save_file(tensors, str(path))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"]["hidden_layers"].append({"member": 0, "layer": 2, "weight": "students.0.cin.0.weight",
                                               "shape": [4, 6, 1], "kind": "cross", "label": "cin.0", "name": None})
    (run / "manifest.json").write_text(json.dumps(manifest))
    df = analyze(run, targets="weights", tau=4.0, baseline_draws=1, out_dir=tmp_path / "out", progress=False)
    cin = df[df["name"] == "students.0.cin.0.weight"]
    assert set(cin["kind"]) == {"cross"} and set(cin["label"]) == {"cin.0"}
    assert (int(cin["rows"].iloc[0]), int(cin["cols"].iloc[0])) == (4, 6)
    ka = cin.loc[cin["metric"] == "knowledge_abundance", "value"].iloc[0]
    assert ka == pytest.approx(2 / 4)  # σ = 7, 5 above τ = 4
    svs = load_singular_values(tmp_path / "out")
    np.testing.assert_allclose(svs["weights:students.0.cin.0.weight"], sigma, rtol=1e-5)
    mlp = df[(df["name"] == "students.1.layers.1.linear.weight") & (df["metric"] == "knowledge_abundance")]
    assert (mlp["kind"].iloc[0], mlp["label"].iloc[0]) == ("linear", "mlp.1")  # old entry: the defaults
    assert mlp["value"].iloc[0] == pytest.approx(KA[(1, 1)])
