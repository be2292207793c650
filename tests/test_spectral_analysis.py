"""analyze(): run directories, checkpoint files, foreign state dicts; values against numpy references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from spectral_fixtures import FIELDS, HIDDEN, KA, PROBE_ROWS, SIGMAS, counts, make_run, model_tensors, probe_tensors

from collapse_lab.errors import UserError
from collapse_lab.spectral import analyze, load_singular_values
from collapse_lab.spectral import functional as F
from collapse_lab.spectral.analysis import COLUMNS, default_out_dir


def _value(df, name, metric, target=None):
    sel = (df["name"] == name) & (df["metric"] == metric)
    if target:
        sel &= df["target"] == target
    assert sel.sum() == 1, (name, metric)
    return df.loc[sel, "value"].item()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("spectral"), nan_rows=(1, 5))


@pytest.fixture(scope="module")
def frame(run):
    return analyze(run, out_dir=run / "spectrum", baseline_draws=3)


def test_run_directory_every_target(frame, run):
    assert list(frame.columns) == COLUMNS
    assert set(frame["target"]) == {"weights", "embeddings", "activations", "input"}
    for (k, j), ka in KA.items():
        name = f"students.{k}.layers.{j}.linear.weight"
        assert _value(frame, name, "knowledge_abundance") == ka
        assert _value(frame, name, "information_abundance") == pytest.approx(F.information_abundance(SIGMAS[k, j]),
                                                                             rel=1e-6)
        assert _value(frame, name, "sv_max") == pytest.approx(SIGMAS[k, j][0], rel=1e-6)
        assert frame.loc[frame["name"] == name, "member"].eq(str(k)).all()
    # the rank-2 user table (σ = 3, 1) stored in float32: IA = 4/3, rank 2 above the storage floor
    user = "embedding.tables.user.weight"
    assert _value(frame, user, "information_abundance") == pytest.approx(4 / 3, rel=1e-6)
    assert _value(frame, user, "numerical_rank") == 2
    assert frame.loc[frame["target"] == "embeddings", "member"].eq("shared").all()
    assert frame.loc[frame["name"] == user, "source"].eq("checkpoints/best/model.safetensors").all()
    # probe activations: centered by default; the two NaN rows are excluded and counted
    probe = probe_tensors()
    act = probe["students.0.layers.0"].double().numpy()
    keep = np.delete(act, [1, 5], axis=0)
    ref = np.linalg.svd(keep - keep.mean(0), compute_uv=False)
    assert _value(frame, "students.0.layers.0", "effective_rank") == pytest.approx(F.effective_rank(ref), rel=1e-9)
    assert _value(frame, "students.0.layers.0", "nonfinite_rows") == 2
    assert _value(frame, "students.0.layers.0", "attainable_rank") == HIDDEN[0]
    assert frame.loc[frame["name"] == "students.0.layers.0", "rows"].eq(PROBE_ROWS - 2).all()
    assert any("2 row(s) with NaN/Inf excluded" in n for n in frame.attrs["notes"])
    inp = probe["input"].double().numpy()
    ref = np.linalg.svd(inp - inp.mean(0), compute_uv=False)
    assert _value(frame, "input", "participation_ratio") == pytest.approx(F.participation_ratio(ref), rel=1e-9)
    conv = frame.loc[(frame["name"] == "input") & (frame["metric"] == "rankme"), "convention"].item()
    assert conv.startswith("center=yes;rows=uniform;method=") and "eps=1e-07" in conv


def test_baselines_and_ratios(frame):
    ia = frame[(frame["metric"] == "information_abundance")]
    np.testing.assert_allclose(ia["ratio"], ia["value"] / ia["baseline"])
    item = ia[ia["name"] == "embedding.tables.item.weight"]
    assert item["ratio"].item() == pytest.approx(1.0, abs=0.2)  # an iid Gaussian table is at its baseline
    user = ia[ia["name"] == "embedding.tables.user.weight"]
    assert user["ratio"].item() < 0.5  # the rank-2 table is collapsed relative to random
    assert frame.loc[frame["metric"] == "nonfinite_rows", "baseline"].isna().all()


def test_written_files_round_trip(frame, run):
    out = run / "spectrum"
    disk = pd.read_csv(out / "spectrum.csv")
    assert list(disk.columns) == COLUMNS and len(disk) == len(frame)
    np.testing.assert_allclose(disk["value"], frame["value"], rtol=1e-9)
    sv = load_singular_values(out)
    assert set(sv) == {f"{t}:{n}" for t, n in zip(frame["target"], frame["name"], strict=True)}
    np.testing.assert_allclose(sv["weights:students.0.layers.1.linear.weight"], SIGMAS[0, 1], rtol=1e-6)
    assert all(v.dtype == np.float64 and np.all(np.diff(v) <= 0) for v in sv.values())
    assert default_out_dir(run) == out
    assert default_out_dir(run / "checkpoints" / "best" / "model.safetensors").name == "model_spectrum"


def test_frequency_and_trained_weighting(run):
    table = model_tensors()["embedding.tables.user.weight"].double().numpy()
    c = counts()["user"]
    for weighting, w in (("frequency", np.sqrt(c)), ("trained", (c > 0).astype(float))):
        df = analyze(run, targets="embeddings", weighting=weighting, baseline_draws=2)
        ref = np.linalg.svd(w[:, None] * table, compute_uv=False)
        name = "embedding.tables.user.weight"
        assert _value(df, name, "effective_rank") == pytest.approx(F.effective_rank(ref), rel=1e-7)
        assert _value(df, name, "excluded_rows") == int((c == 0).sum())
        assert _value(df, name, "nonfinite_rows") == 0
        assert f"rows={weighting}" in df.loc[df["name"] == name, "convention"].iloc[0]
        assert df.loc[df["name"] == name, "rows"].eq(int((c > 0).sum())).all()


def test_no_center_and_target_selection(run):
    df = analyze(run, targets=["activations"], center=False, baseline_draws=2)
    assert set(df["target"]) == {"activations"}
    act = probe_tensors()["students.1.layers.1"].double().numpy()
    ref = np.linalg.svd(act, compute_uv=False)
    assert _value(df, "students.1.layers.1", "effective_rank") == pytest.approx(F.effective_rank(ref), rel=1e-9)
    assert df["convention"].str.startswith("center=no").all()


def test_exact_mode_matches_default(run):
    a = analyze(run, targets="weights,embeddings", baseline_draws=2)
    b = analyze(run, targets="weights,embeddings", exact=True, baseline_draws=2)
    assert (b["convention"].str.contains("method=tsqr")).all()
    keep = ~a["metric"].isin(["resolution_floor", "sv_min"])
    np.testing.assert_allclose(a.loc[keep, "value"], b.loc[keep, "value"], rtol=1e-7, atol=1e-7)


def test_checkpoint_file_inside_a_run_uses_names_and_counts(run):
    path = run / "checkpoints" / "best" / "model.safetensors"
    df = analyze(path, weighting="trained", baseline_draws=2)
    assert set(df["target"]) == {"weights", "embeddings"}
    assert _value(df, "students.1.layers.0.linear.weight", "knowledge_abundance") == KA[1, 0]
    assert _value(df, "embedding.tables.item.weight", "excluded_rows") == int((counts()["item"] == 0).sum())
    assert "students.0.head.weight" not in set(df["name"])  # the 1×H logit head is not a hidden layer


def test_plain_torch_state_dict_nested_and_prefixed(tmp_path):
    sd = {f"module.{k}": v for k, v in model_tensors().items()}
    optimizer = {"state": {0: {"exp_avg": torch.ones(6, 8)}}, "param_groups": [{"lr": 0.1}]}
    torch.save({"state_dict": sd, "optimizer": optimizer, "epoch": 3}, tmp_path / "ckpt.pt")
    df = analyze(tmp_path / "ckpt.pt", baseline_draws=2)
    names = set(df["name"])
    assert "students.0.layers.0.linear.weight" in names and "embedding.tables.user.weight" in names
    assert not any("exp_avg" in n for n in names)  # optimizer state is not unwrapped
    for (k, j), ka in KA.items():
        assert _value(df, f"students.{k}.layers.{j}.linear.weight", "knowledge_abundance") == ka


def test_foreign_single_table_sliced_by_field_dims(tmp_path):
    """Multi-Embedding layout (one table, offsets): docs/metrics.md §5 slicing example, IA 1.577350 / 1.000000."""
    table = torch.tensor([[1.0, 0], [0, 1], [1, 1], [2, 2], [1, 1]])
    torch.save({"model": {"embedding.embedding.weight": table, "mlp.0.weight": torch.randn(3, 4)}},
               tmp_path / "me.model")
    df = analyze(tmp_path / "me.model", targets="embeddings", field_dims=[3, 2], baseline_draws=2)
    assert _value(df, "embedding.embedding.weight:field0", "information_abundance") == pytest.approx(1.577350, abs=1e-6)
    assert _value(df, "embedding.embedding.weight:field1", "information_abundance") == pytest.approx(1.0, abs=1e-9)
    whole = analyze(tmp_path / "me.model", targets="embeddings", baseline_draws=2)
    assert _value(whole, "embedding.embedding.weight", "information_abundance") == pytest.approx(1.277350, abs=1e-6)
    with pytest.raises(UserError, match="field_dims sum to 6"):
        analyze(tmp_path / "me.model", field_dims=[3, 3])


def test_fuxictr_like_names_and_shapes_are_classified(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "embedding_layer.embedding_layer.embedding_layers.C1.weight": rng.standard_normal((50, 4)),
        "big_lookup": rng.standard_normal((5000, 8)),  # no 'emb' in the name: tall and thin → table by shape
        "mlps.1.mlp.0.weight": rng.standard_normal((6, 8)),
        "mlps.1.mlp.0.bias": rng.standard_normal(6),
        "fc_out.weight": rng.standard_normal((1, 6)),
        "step": np.array([7]),
    }
    save_file({k: torch.tensor(v, dtype=torch.float32) if v.dtype == float else torch.tensor(v)
               for k, v in tensors.items()}, str(tmp_path / "fx.safetensors"))
    df = analyze(tmp_path / "fx.safetensors", baseline_draws=2)
    targets = df.groupby("name")["target"].first().to_dict()
    assert targets == {"embedding_layer.embedding_layer.embedding_layers.C1.weight": "embeddings",
                       "big_lookup": "embeddings", "mlps.1.mlp.0.weight": "weights"}
    assert df.loc[df["name"] == "mlps.1.mlp.0.weight", "member"].eq("1").all()
    assert any("fc_out.weight" in n for n in df.attrs["notes"])


def test_npy_activation_matrix_is_streamed(tmp_path):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((3000, 10)) @ rng.standard_normal((10, 10))).astype(np.float32)
    np.save(tmp_path / "acts.npy", a)
    df = analyze(tmp_path / "acts.npy", chunk_rows=257, baseline_draws=2)
    ref = np.linalg.svd(a.astype(np.float64) - a.astype(np.float64).mean(0), compute_uv=False)
    assert set(df["target"]) == {"activations"}
    assert _value(df, "acts", "effective_rank") == pytest.approx(F.effective_rank(ref), rel=1e-9)


def test_bad_inputs_raise_user_errors(tmp_path, run):
    with pytest.raises(UserError, match="no such file"):
        analyze(tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="unknown weighting"):
        analyze(run, weighting="idf")
    with pytest.raises(UserError, match="unknown target"):
        analyze(run, targets="weights,biases")
    with pytest.raises(UserError, match="no checkpoint named 'last'"):
        analyze(run, checkpoint="last")
    torch.save({"user_emb.weight": torch.randn(20, 3)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="training-split counts"):
        analyze(tmp_path / "foreign.pt", weighting="frequency")
    with pytest.raises(UserError, match="no activations found"):
        analyze(tmp_path / "foreign.pt", targets="activations")
    torch.save({"bias": torch.zeros(3), "scale": torch.ones(2, 2, 2), "steps": 5}, tmp_path / "no2d.pt")
    with pytest.raises(UserError, match=r"no 2-D tensor found; found: bias float32\[3\], scale float32\[2, 2, 2\]"):
        analyze(tmp_path / "no2d.pt")
    torch.save({"optimizer": {"state": {0: {"exp_avg": torch.ones(30, 4)}}}, "epoch": 2}, tmp_path / "trainer.pt")
    with pytest.raises(UserError, match=r"no analysable matrix \(not analysed: 1 optimizer/trainer state\)"):
        analyze(tmp_path / "trainer.pt")


def test_run_without_probe_notes_it(tmp_path):
    run = make_run(tmp_path, probe=False)
    df = analyze(run, targets=("weights", "embeddings", "activations", "input"), baseline_draws=2)  # = all present
    assert set(df["target"]) == {"weights", "embeddings"}
    assert any("no probe" in n for n in df.attrs["notes"])
    assert len(FIELDS) == df.loc[df["target"] == "embeddings", "name"].nunique()


def test_too_wide_matrices_are_refused_before_reading():
    from collapse_lab.spectral.sources import RowSource
    from collapse_lab.spectral.streaming import matrix_spectrum

    def never(a, b):
        raise AssertionError("must not read")

    with pytest.raises(UserError, match="too wide for a dense spectrum"):
        matrix_spectrum(RowSource((20_000, 20_000), "float32", never))


def test_large_inputs_are_not_recomputed_but_flagged(tmp_path, monkeypatch):
    from collapse_lab.spectral import streaming

    rng = np.random.default_rng(2)
    a = np.outer(rng.standard_normal(5000), rng.standard_normal(8)).astype(np.float32)  # rank 1
    np.save(tmp_path / "rank1.npy", a)
    small = analyze(tmp_path / "rank1.npy", center=False, baseline_draws=2)
    assert small["convention"].str.contains("method=tsqr").all()  # auto-escalated: cheap second pass
    monkeypatch.setattr(streaming, "AUTO_EXACT_MAX_ENTRIES", 1000)
    big = analyze(tmp_path / "rank1.npy", center=False, baseline_draws=2)
    assert big["convention"].str.contains("method=gram64").all()
    assert any("below the float64 Gram's resolution; rerun with --exact" in n for n in big.attrs["notes"])
    assert _value(big, "rank1", "effective_rank") < 1.0001


def test_half_precision_safetensors_tables(tmp_path):
    rng = np.random.default_rng(3)
    a = torch.tensor(rng.standard_normal((300, 8)))
    save_file({"embedding.tables.b.weight": a.bfloat16(), "embedding.tables.h.weight": a.half()},
              str(tmp_path / "half.safetensors"))
    df = analyze(tmp_path / "half.safetensors", baseline_draws=2)
    for name, dtype, u in (("embedding.tables.b.weight", torch.bfloat16, 2.0**-8),
                           ("embedding.tables.h.weight", torch.float16, 2.0**-11)):
        ref = np.linalg.svd(a.to(dtype).double().numpy(), compute_uv=False)
        assert _value(df, name, "effective_rank") == pytest.approx(F.effective_rank(ref), rel=1e-10)
        assert _value(df, name, "storage_floor") == pytest.approx(u * np.sqrt(np.sum(ref**2) / 8), rel=1e-9)
