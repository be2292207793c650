"""`collapse-lab spectrum A B`: per-matrix metric differences B − A of synthetic checkpoints with KNOWN σ."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from spectral_fixtures import with_singular_values

from collapse_lab.cli import cli, main
from collapse_lab.errors import UserError
from collapse_lab.spectral.compare import DIFF_COLUMNS, compare_spectra

# weights: KA(τ = 4) = #{σ > 4}/#{σ > 0}, IA = Σσ/σ₁ (docs/metrics.md §1-2)
W_A = (10.0, 9.0, 5.0, 3.0, 2.0, 1.0)  # KA 3/6, IA 3.0
W_B = (10.0, 9.0, 8.0, 7.0, 2.0, 1.0)  # KA 4/6, IA 3.7
E_A = (3.0, 1.0)  # embedding IA 4/3
E_B = (3.0, 3.0)  # embedding IA 2


def _sd(weight, table, extra):
    sd = {"towers.0.weight": with_singular_values(6, 8, weight, 1),
          "user_embedding.weight": with_singular_values(50, 4, table, 2)}
    sd.update(extra)
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in sd.items()}


A = _sd(W_A, E_A, {"old_emb.weight": np.random.default_rng(3).standard_normal((40, 4)),
                   "towers.2.weight": np.random.default_rng(4).standard_normal((6, 8))})
B = _sd(W_B, E_B, {"towers.1.weight": np.random.default_rng(5).standard_normal((6, 8)),
                   "towers.2.weight": np.random.default_rng(6).standard_normal((4, 8))})


def _diff(frame, name, metric):
    sel = frame[(frame["name"] == name) & (frame["metric"] == metric)]
    assert len(sel) == 1, (name, metric)
    return sel.iloc[0]


def test_known_differences_matched_by_name():
    c = compare_spectra(A, B, baseline_draws=1)
    ka = _diff(c.frame, "towers.0.weight", "knowledge_abundance")
    assert (ka["a"], ka["b"]) == (0.5, pytest.approx(4 / 6)) and ka["diff"] == pytest.approx(1 / 6)
    ia = _diff(c.frame, "towers.0.weight", "information_abundance")
    assert ia["a"] == pytest.approx(3.0) and ia["b"] == pytest.approx(3.7) and ia["diff"] == pytest.approx(0.7)
    emb = _diff(c.frame, "user_embedding.weight", "information_abundance")
    assert emb["target"] == "embeddings" and emb["diff"] == pytest.approx(2 - 4 / 3)
    assert c.only_a == ["embeddings:old_emb.weight"] and c.only_b == ["weights:towers.1.weight"]
    assert any("towers.2.weight: shapes differ (A 6x8, B 4x8)" in n for n in c.notes)
    assert list(c.frame.columns) == DIFF_COLUMNS
    assert set(c.frame["name"]) == {"towers.0.weight", "towers.2.weight", "user_embedding.weight"}
    assert not c.frame["metric"].isin(["resolution_floor", "storage_floor", "attainable_rank"]).any()
    np.testing.assert_allclose(c.frame["diff"], c.frame["b"] - c.frame["a"])


def test_same_input_differs_by_zero():
    c = compare_spectra(A, A, baseline_draws=1)
    assert not c.only_a and not c.only_b and (c.frame["diff"] == 0).all()


@pytest.fixture()
def files(tmp_path):
    torch.save(A, tmp_path / "a.pt")
    torch.save(B, tmp_path / "b.pt")
    return tmp_path / "a.pt", tmp_path / "b.pt"


def test_cli_json_and_csv(files, tmp_path):
    a, b = files
    out = tmp_path / "cmp"
    result = CliRunner().invoke(cli, ["spectrum", str(a), str(b), "--json", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["a"] == str(a) and payload["b"] == str(b) and payload["matched"] == 3
    assert payload["only_a"] == ["embeddings:old_emb.weight"] and payload["only_b"] == ["weights:towers.1.weight"]
    rows = pd.DataFrame(payload["rows"])
    assert _diff(rows, "towers.0.weight", "knowledge_abundance")["diff"] == pytest.approx(1 / 6)
    assert payload["files"] == [str(out / "spectrum_diff.csv")]
    csv = pd.read_csv(out / "spectrum_diff.csv")
    assert list(csv.columns) == DIFF_COLUMNS and len(csv) == len(rows)
    assert _diff(csv, "towers.0.weight", "information_abundance")["diff"] == pytest.approx(0.7)
    assert not (a.parent / "a_spectrum").exists()  # comparing writes nothing beside the inputs


def test_cli_table_lists_unmatched(files):
    a, b = files
    result = CliRunner().invoke(cli, ["spectrum", str(a), str(b)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "hidden-layer weights (uncentered) (dX = B - A)" in text and "dKA" in text
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("0") and "towers.0.weight" in ln)
    assert line.split()[2:5] == ["0.5", "0.6667", "0.1667"]  # member, matrix, KA A, KA B, dKA
    assert "only in A (not compared): embeddings:old_emb.weight" in text
    assert "only in B (not compared): weights:towers.1.weight" in text


@pytest.mark.parametrize("extra, message", [
    (["--device", "cuda"], "error: --device 'cuda': spectra are computed on the CPU"),
    (["x.pt"], "expected PATH, or two paths A B to compare; got 3 paths"),
    (["--threads", "0"], "Invalid value for '--threads'"),
])
def test_cli_bad_options_exit_2(files, capsys, extra, message):
    a, b = files
    with pytest.raises(SystemExit) as exc:
        main(["spectrum", str(a), str(b), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_threads_option_reaches_the_spectral_products(files, monkeypatch):
    """The Gram/TSQR run with torch and the BLAS pool capped at --threads (threadpoolctl), restored afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import collapse_lab.spectral.analysis as report

    seen = []
    real = report.matrix_spectrum

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), {p["num_threads"] for p in threadpool_info()
                                               if p["user_api"] == "blas"}))
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "matrix_spectrum", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with threadpool_limits(limits=3, user_api="blas"):
            result = CliRunner().invoke(cli, ["spectrum", str(files[0]), "--threads", "1", "--out",
                                              str(files[0].parent / "s")])
            after = (torch.get_num_threads(), {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    assert seen and all(t == 1 and blas == {1} for t, blas in seen)
    assert after == (3, {3})


def test_missing_b_fails_before_analysing_a(files, monkeypatch):
    import collapse_lab.spectral.compare as compare

    def never(*args, **kwargs):
        raise AssertionError("A was analysed although B does not exist")

    monkeypatch.setattr(compare, "analyze", never)
    with pytest.raises(UserError, match=r"nope\.pt: no such file or directory"):
        compare_spectra(files[0], files[0].parent / "nope.pt")
