"""α-ReQ fits only the eigenvalues above the numerical floor (NaN + note below 20); spectrum --json precision."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from collapse_lab.cli import cli
from collapse_lab.spectral import analyze
from collapse_lab.spectral import functional as F


def _value(df, metric):
    return df.loc[df["metric"] == metric, "value"].item()


def _centered_sv(a):
    a = np.asarray(a, dtype=np.float64)
    return np.linalg.svd(a - a.mean(0), compute_uv=False)


def test_a_rank_10_matrix_has_no_alpha_instead_of_a_fit_on_round_off():
    rng = np.random.default_rng(0)
    sigma = _centered_sv(rng.standard_normal((500, 10)) @ rng.standard_normal((10, 64)))
    assert F.numerical_rank(sigma, shape=(500, 64)) == 10 and sigma[10] < 1e-12 * sigma[0]  # 54 round-off σ
    assert math.isnan(F.alpha_req(sigma, shape=(500, 64)))  # was 2.52, a slope through round-off
    assert F.alpha_req_reason(sigma, shape=(500, 64)) == ("only 10 of 64 eigenvalues above the numerical floor "
                                                          "(needs 20)")


def test_a_full_rank_power_law_spectrum_is_recovered():
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((300, 120)))
    v, _ = np.linalg.qr(rng.standard_normal((120, 120)))
    i = np.arange(1, 121)
    a = (u * i**-0.75) @ v.T  # σ_i = i^-3/4, so λ_i = σ_i² = i^-3/2: α = 1.5
    sigma = np.linalg.svd(a, compute_uv=False)
    assert F.alpha_req_reason(sigma, shape=a.shape) is None
    assert F.alpha_req(sigma, shape=a.shape) == pytest.approx(1.5, abs=1e-9)
    assert F.alpha_req(sigma, shape=a.shape, weighted=False) == pytest.approx(1.5, abs=1e-9)


def test_only_the_eigenvalues_numerical_rank_counts_enter_the_fit():
    i = np.arange(1, 31, dtype=float)
    live = i**-1.0  # λ = σ² = i^-2: α = 2 on the 30 resolved eigenvalues
    tail = np.full(34, 1e-9)  # e.g. a Gram backend's resolution floor: not resolved, must not enter
    sigma = np.r_[live, tail]
    assert F.numerical_rank(sigma, atol=1e-8) == 30
    assert F.alpha_req(sigma, atol=1e-8) == pytest.approx(2.0, abs=1e-9)
    assert F.alpha_req(sigma) > 5  # with the default tolerance the 1e-9 tail counts and bends the fit
    assert math.isnan(F.alpha_req(sigma, atol=1e-8, ranks=(29, 100)))  # 2 ranks in the window
    assert "fewer than 3 of ranks 29..100" in F.alpha_req_reason(sigma, atol=1e-8, ranks=(29, 100))
    assert math.isnan(F.alpha_req(np.zeros(40)))
    assert F.alpha_req_reason(np.zeros(40)).startswith("only 0 of 40")


def test_dead_relu_units_do_not_inflate_alpha_in_the_report(tmp_path):
    rng = np.random.default_rng(2)
    x = np.maximum(rng.standard_normal((4000, 64)) @ rng.standard_normal((64, 64)), 0).astype(np.float32)
    x[:, 40:] = 0.0  # 24 dead ReLU units
    x[:, 40:] += 1e-30 * rng.standard_normal((4000, 24)).astype(np.float32)  # denormal-level residue
    np.save(tmp_path / "acts.npy", x)
    gram = analyze(tmp_path / "acts.npy", auto_exact=False, baseline_draws=2)  # float64 Gram: round-off tail
    assert gram["convention"].str.contains("method=gram64").all()
    assert _value(gram, "numerical_rank") == 40
    reference = F.alpha_req(_centered_sv(x[:, :40]))  # the live units alone, exact SVD
    assert 0.5 < reference < 3
    assert _value(gram, "alpha_req") == pytest.approx(reference, rel=1e-6)  # was 50.1 before the floor
    exact = analyze(tmp_path / "acts.npy", exact=True, baseline_draws=2)
    assert _value(exact, "alpha_req") == pytest.approx(reference, rel=1e-6)


def test_the_report_writes_nan_and_a_note_for_a_rank_10_matrix(tmp_path):
    rng = np.random.default_rng(3)
    np.save(tmp_path / "low.npy", (rng.standard_normal((600, 10)) @ rng.standard_normal((10, 48))).astype(np.float32))
    df = analyze(tmp_path / "low.npy", out_dir=tmp_path / "out", baseline_draws=2)
    assert math.isnan(_value(df, "alpha_req")) and _value(df, "numerical_rank") == 10
    assert "low: alpha_req is NaN: only 10 of 48 eigenvalues above the numerical floor (needs 20)" in df.attrs["notes"]
    csv = pd.read_csv(tmp_path / "out" / "spectrum.csv")
    assert csv.loc[csv["metric"] == "alpha_req", "value"].isna().all()
    np.save(tmp_path / "narrow.npy", rng.standard_normal((100, 12)).astype(np.float32))
    assert "alpha_req" not in set(analyze(tmp_path / "narrow.npy", baseline_draws=2)["metric"])  # < 20 σ: no row


def test_spectrum_json_prints_floats_at_full_precision(tmp_path):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((64, 24))
    a[:, -1] = 1e-13 * rng.standard_normal(64)  # a σ near 1e-13, printed 0.0 at 10 decimals
    np.save(tmp_path / "m.npy", a)
    result = CliRunner().invoke(cli, ["spectrum", str(tmp_path / "m.npy"), "--no-center", "--exact", "--json",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    sv_min = next(r["value"] for r in rows if r["metric"] == "sv_min")
    assert 1e-14 < sv_min < 1e-12  # not 0.0
    sv = np.load(tmp_path / "out" / "singular_values.npz")
    assert sv_min == float(sv[sv.files[0]][-1])  # bit for bit
    frame = analyze(tmp_path / "m.npy", center=False, exact=True)  # the same computation, in memory
    for row, (_, ref) in zip(rows, frame.iterrows(), strict=True):  # same rows, same order
        for column in ("value", "baseline", "ratio"):
            expected = None if not np.isfinite(ref[column]) else float(ref[column])
            assert row[column] == expected, (row["metric"], column)  # every float round-trips exactly
    assert "NaN" not in result.output and "Infinity" not in result.output  # strict JSON: non-finite -> null
