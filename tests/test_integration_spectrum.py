"""End to end: a run trained by the trainer analyses with the spectrum tool, and the numbers are the SVD's."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file
from train_fixtures import make_dataset, tiny_config

from collapse_lab.cli import main
from collapse_lab.spectral import analyze, load_singular_values
from collapse_lab.training.api import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    dataset = make_dataset(root, rows=3000)
    result = train(tiny_config(dataset, method="kdef", n=2, max_epochs=2, seed=3), out_dir=root / "run",
                   progress=False, console=False)
    return result.run_dir


def test_knowledge_abundance_of_trained_weights_matches_numpy_svd(trained_run, tmp_path):
    df = analyze(trained_run, out_dir=tmp_path / "spec")
    weights = load_file(str(trained_run / "checkpoints" / "best" / "model.safetensors"))
    ka = df[(df.target == "weights") & (df.metric == "knowledge_abundance")].set_index("name")["value"]
    names = [k for k in weights if k.startswith("students.") and k.endswith(".linear.weight")]
    assert sorted(names) == sorted(ka.index)
    for name in names:
        sigma = np.linalg.svd(weights[name].astype(np.float64), compute_uv=False)
        for tau in (4.0,):
            expected = np.sum(sigma > tau) / np.sum(sigma > 0)
            assert ka[name] == pytest.approx(expected, abs=1e-12)
    stored = load_singular_values(tmp_path / "spec")
    sigma0 = np.linalg.svd(weights[names[0]].astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(stored[f"weights:{names[0]}"], sigma0, rtol=1e-7, atol=1e-10)


def test_embedding_information_abundance_of_trained_tables(trained_run, tmp_path):
    df = analyze(trained_run, targets=("embeddings",), out_dir=tmp_path / "spec")
    weights = load_file(str(trained_run / "checkpoints" / "best" / "model.safetensors"))
    ia = df[(df.metric == "information_abundance")].set_index("name")["value"]
    tables = [k for k in weights if k.startswith("embedding.tables.")]
    assert sorted(tables) == sorted(ia.index)
    for name in tables:
        sigma = np.linalg.svd(weights[name].astype(np.float64), compute_uv=False)
        assert ia[name] == pytest.approx(sigma.sum() / sigma.max(), rel=1e-8)


def test_activation_targets_from_probe(trained_run, tmp_path):
    df = analyze(trained_run, targets=("activations", "input"), out_dir=tmp_path / "spec")
    probe = load_file(str(trained_run / "probe.safetensors"))
    er = df[(df.target == "activations") & (df.metric == "effective_rank")].set_index("name")["value"]
    assert len(er) == 4  # 2 students x 2 hidden layers
    for name in er.index:
        act = probe[name].astype(np.float64)
        sigma = np.linalg.svd(act - act.mean(0), compute_uv=False)  # centred by default
        p = sigma[sigma > 1e-9 * sigma[0]] / sigma.sum()
        assert er[name] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert set(df.target) == {"activations", "input"}


def test_spectrum_cli_on_trained_run(trained_run, tmp_path, capsys):
    main(["spectrum", str(trained_run), "--out", str(tmp_path / "cli"), "--targets", "weights"])
    out = capsys.readouterr().out
    assert (tmp_path / "cli" / "spectrum.csv").exists() and (tmp_path / "cli" / "singular_values.npz").exists()
    assert "knowledge abundance" in out and "layer 1" in out
