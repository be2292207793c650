"""Knowledge-abundance thresholds that fit the scale: the Marchenko–Pastur bulk edge and σ > τ·σ_max."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collapse_lab.errors import UserError
from collapse_lab.spectral import functional as F


def test_mp_edge_formula_by_hand():
    # s² = ‖A‖_F²/(mn) = 4 → s = 2; edge = 2·(√400 + √100) = 60
    assert F.mp_bulk_edge(400, 100, 400 * 100 * 4.0) == pytest.approx(60.0)
    assert F.mp_bulk_edge(1, 1, 9.0) == pytest.approx(6.0)  # 1x1: s = 3, edge 3·2
    with pytest.raises(UserError, match="at least 1x1"):
        F.mp_bulk_edge(0, 3, 1.0)


@pytest.mark.parametrize("shape", [(300, 300), (500, 100), (100, 500), (2000, 40)])
def test_mp_edge_matches_monte_carlo_largest_singular_value(shape):
    """The mean σ_max of Gaussian matrices (entry sd 0.3) lies within 3% of s(√m + √n) with s from ‖A‖_F."""
    rng = np.random.default_rng(7)
    ratios = []
    for _ in range(12):
        a = 0.3 * rng.standard_normal(shape)
        sigma = np.linalg.svd(a, compute_uv=False)
        edge = F.mp_bulk_edge(*shape, float(np.sum(a * a)))
        ratios.append(sigma[0] / edge)
    assert abs(np.mean(ratios) - 1.0) < 0.03
    # and the energy-matched s is the entry sd: the edge of the true s = 0.3 agrees to 1%
    true_edge = 0.3 * (math.sqrt(shape[0]) + math.sqrt(shape[1]))
    assert F.mp_bulk_edge(*shape, float(np.sum(a * a))) == pytest.approx(true_edge, rel=0.01)


def test_ka_mp_of_gaussian_is_about_zero_and_scale_free():
    rng = np.random.default_rng(3)
    for shape in [(400, 400), (400, 624), (1000, 16)]:
        a = rng.standard_normal(shape)
        s = np.linalg.svd(a, compute_uv=False)
        ka = F.knowledge_abundance(s, threshold="mp", shape=shape)
        assert ka <= 2 / min(shape)  # at most a Tracy–Widom straggler above the edge
        assert F.knowledge_abundance(1e3 * s, threshold="mp", shape=shape) == ka  # A -> cA
    # the paper's absolute τ = 4 is not scale-free: all σ of a unit Gaussian 400x400 are < 40, of ×0.1 < 4
    s = np.linalg.svd(0.1 * rng.standard_normal((400, 400)), compute_uv=False)
    assert F.knowledge_abundance(s, tau=4) == 0.0 and F.knowledge_abundance(100 * s, tau=4) > 0.9


@pytest.mark.parametrize("rank", [1, 5, 20])
def test_ka_mp_of_planted_low_rank_plus_noise_counts_the_planted_rank(rank):
    """Noise N(0, 1) of 400x300 plus `rank` orthogonal spikes of σ = 150: exactly the spikes clear the edge of
    the equal-energy Gaussian (the spikes raise the edge, from 37.3 to at most ~75, still below them)."""
    rng = np.random.default_rng(rank)
    m, n = 400, 300
    u, _ = np.linalg.qr(rng.standard_normal((m, rank)))
    v, _ = np.linalg.qr(rng.standard_normal((n, rank)))
    a = 150.0 * u @ v.T + rng.standard_normal((m, n))
    s = np.linalg.svd(a, compute_uv=False)
    assert F.knowledge_abundance(s, threshold="mp", shape=(m, n)) == pytest.approx(rank / n)
    edge = F.ka_threshold(s, "mp", shape=(m, n))
    assert s[rank - 1] > edge > s[rank]


def test_ka_rel_by_hand():
    s = [10.0, 6.0, 5.0, 2.0, 0.5, 0.0]
    # threshold 0.5·10 = 5: σ > 5 strictly → {10, 6}; positive σ: 5 → 2/5
    assert F.knowledge_abundance(s, tau=0.5, threshold="rel") == pytest.approx(2 / 5)
    # default τ_rel = 0.1 → threshold 1: {10, 6, 5, 2} of 5
    assert F.knowledge_abundance(s, threshold="rel") == pytest.approx(4 / 5)
    assert F.knowledge_abundance([3.0, 3.0], tau=1.0, threshold="rel") == 0.0  # σ = σ_max is not above it
    assert F.knowledge_abundance([0.0, 0.0], threshold="rel") == 0.0


def test_threshold_kinds_and_errors():
    assert F.ka_threshold([9.0, 1.0], "abs") == 4.0 and F.ka_threshold([9.0, 1.0], "abs", 2.5) == 2.5
    assert F.knowledge_abundance([8, 5, 4, 2], threshold="abs") == F.knowledge_abundance([8, 5, 4, 2])
    with pytest.raises(UserError, match="unknown KA threshold 'bulk'; valid: abs, mp, rel"):
        F.knowledge_abundance([1.0], threshold="bulk")
    with pytest.raises(UserError, match="needs the matrix shape"):
        F.knowledge_abundance([1.0], threshold="mp")
    assert F.threshold_label("abs", 2) == "σ > τ = 2"
    assert F.threshold_label("rel", 0.25) == "σ > 0.25·σ_max"


def test_spectrum_cli_threshold_kind_is_recorded_and_shown(tmp_path):
    """`spectrum --threshold mp --tau 1.5`: every weight has the three KA rows, the mp row at τ = 1.5 (the others
    at their defaults) equals the function on the stored singular values, and the summary names the threshold."""
    import json

    import pandas as pd
    from click.testing import CliRunner
    from spectral_fixtures import make_run

    from collapse_lab.cli import cli
    from collapse_lab.spectral.analysis import load_singular_values

    run = make_run(tmp_path)
    out = tmp_path / "spec"
    result = CliRunner().invoke(cli, ["spectrum", str(run), "--targets", "weights", "--threshold", "mp",
                                      "--tau", "1.5", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["ka_threshold"] == {"threshold": "mp", "tau": 1.5}
    rows = pd.DataFrame(payload["rows"])
    svs = load_singular_values(out)
    for name, sub in rows.groupby("name"):
        ka = sub.set_index("metric")
        shape = (int(ka["rows"].iloc[0]), int(ka["cols"].iloc[0]))
        sigma = svs[f"weights:{name}"]
        expected = {"knowledge_abundance_mp": F.knowledge_abundance(sigma, 1.5, threshold="mp", shape=shape),
                    "knowledge_abundance": F.knowledge_abundance(sigma, 4.0),
                    "knowledge_abundance_rel": F.knowledge_abundance(sigma, 0.1, threshold="rel")}
        for metric, value in expected.items():  # JSON keeps 10 digits
            assert ka.at[metric, "value"] == pytest.approx(value, abs=1e-9)
        assert ka.at["knowledge_abundance_mp", "convention"].endswith("threshold=mp;tau=1.5;positive=sv>floor")
        assert ka.at["knowledge_abundance_rel", "convention"].endswith("threshold=rel;tau=0.1;positive=sv>floor")
    text = CliRunner().invoke(cli, ["spectrum", str(run), "--targets", "weights", "--threshold", "rel",
                                    "--out", str(out)])
    assert text.exit_code == 0, text.output
    assert "KA = #{σ > 0.1·σ_max}/#{sv > 0}" in text.output
    bad = CliRunner().invoke(cli, ["spectrum", str(run), "--threshold", "bulk"])
    assert bad.exit_code == 2 and "'bulk' is not one of 'abs', 'mp', 'rel'" in bad.output
