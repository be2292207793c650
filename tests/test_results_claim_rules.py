"""Fair rules for C2, C5/C6 and C7: the spread tested on the within-run SD (simulated under i.i.d. students),
one noise threshold for DML and KDEF, and no threshold borrowed when the noise figure is missing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from collapse_lab.results.claims import NOISE_Z, evaluate_claims, noise_threshold, student_sd_trend
from collapse_lab.results.dispersion import c4, expected_range, log_variance_bias, log_variance_variance
from collapse_lab.results.stats import slope_ci

#: expected range of N standard normal draws (control-chart constant d2, e.g. Montgomery, App. VI)
D_TABLE = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970, 10: 3.078}
#: c4 (same table)
C4_TABLE = {2: 0.7979, 3: 0.8862, 4: 0.9213, 5: 0.9400, 6: 0.9515, 7: 0.9594, 8: 0.9650, 9: 0.9693, 10: 0.9727}
NS, SEEDS = (2, 3, 4, 6, 10), 5


def test_expected_range_and_c4_match_the_tables_and_a_simulation():
    for n, d in D_TABLE.items():
        assert expected_range(n) == pytest.approx(d, abs=6e-4)
        assert c4(n) == pytest.approx(C4_TABLE[n], abs=6e-5)
    assert expected_range(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-9)  # E|X1 − X2| = 2/√π
    assert log_variance_variance(2) == pytest.approx(math.pi ** 2 / 2, rel=1e-9)
    draws = np.random.default_rng(0).normal(size=(200_000, 10))
    assert np.ptp(draws, axis=1).mean() == pytest.approx(expected_range(10), rel=0.005)
    sd = draws.std(axis=1, ddof=1)
    assert sd.mean() == pytest.approx(c4(10), rel=0.003)
    log_var = np.log(draws[:, :3].var(axis=1, ddof=1))  # N = 3: ψ(1) − ln 1 = −γ, Var = ψ'(1) = π²/6
    assert log_variance_bias(3) == pytest.approx(-np.euler_gamma, rel=1e-12)
    assert log_var.mean() == pytest.approx(log_variance_bias(3), abs=0.01)
    assert log_var.var() == pytest.approx(log_variance_variance(3), rel=0.02)


def _iid_sweep(rng, sigma_of_n=lambda n: 0.003):
    """One simulated sweep: for every N and seed, N i.i.d. normal student AUCs."""
    n_col, sd_col, range_col = [], [], []
    for n in NS:
        for _ in range(SEEDS):
            aucs = rng.normal(0.78, sigma_of_n(n), n)
            n_col.append(n)
            sd_col.append(aucs.std(ddof=1))
            range_col.append(np.ptp(aucs))
    return np.array(n_col), np.array(sd_col), np.array(range_col)


def test_c2_sd_rule_says_supported_at_its_nominal_rate_with_iid_students():
    """2,000 sweeps of i.i.d. students (σ the same at every N): the SD rule calls the spread "supported" (whole
    95% interval above a ratio of 1) at most at its nominal 2.5% plus Monte-Carlo slack (3 binomial SEs), while
    the old rule — an OLS line through best − worst — says "supported" almost always."""
    rng = np.random.default_rng(2024)
    sims, sd_supported, range_supported = 2000, 0, 0
    for _ in range(sims):
        n, sd, spread = _iid_sweep(rng)
        sd_supported += student_sd_trend(n, sd)[1] > 1
        range_supported += slope_ci(np.log2(n), spread)[1] > 0
    nominal = 0.025
    assert sd_supported / sims <= nominal + 3 * math.sqrt(nominal * (1 - nominal) / sims)
    assert range_supported / sims > 0.9


def test_c2_sd_rule_sees_students_that_do_spread_apart():
    rng = np.random.default_rng(7)
    hits = sum(student_sd_trend(*_iid_sweep(rng, lambda n: 0.002 * n ** 0.5)[:2])[1] > 1 for _ in range(200))
    assert hits / 200 > 0.8  # σ grows √5-fold from N = 2 to N = 10


def _claims_table(rng, variants=("vanilla-mean",), se=None):
    rows = []
    for seed in range(SEEDS):
        rows.append({"variant": "vanilla-mean", "n": 1, "seed": seed, "member": "ensemble", "ensemble_auc": 0.78,
                     "best_student_auc": 0.78, "worst_student_auc": 0.78, "gap": 0.0, "spread": 0.0,
                     "student_auc_sd": np.nan})
        for variant in variants:
            for n in NS:
                aucs = rng.normal(0.78, 0.003, n)
                row = {"variant": variant, "n": n, "seed": seed, "member": "ensemble", "ensemble_auc": 0.79,
                       "best_student_auc": aucs.max(), "worst_student_auc": aucs.min(), "gap": 0.79 - aucs.max(),
                       "spread": np.ptp(aucs), "student_auc_sd": aucs.std(ddof=1)}
                if se is not None:
                    row["student_auc_diff_se"] = se(variant, n, seed)
                rows.append(row)
    return pd.DataFrame(rows)


def test_claims_table_reads_c2_on_the_sd_and_shows_the_range_with_its_iid_expectation():
    table = _claims_table(np.random.default_rng(3))
    c2 = evaluate_claims(table).query("claim == 'C2'")
    trend = c2[c2.quantity.str.startswith("student AUC SD within a run, fitted ratio N=10 / N=2")].iloc[0]
    vanilla = table[table["n"] >= 2]
    ratio, lo, hi, k, _ = student_sd_trend(vanilla["n"], vanilla["student_auc_sd"])
    assert (trend.estimate, trend.ci_low, trend.ci_high) == pytest.approx((ratio, lo, hi))
    assert trend.runs == "25" and trend.rule == "> 1" and trend.unit == "ratio"
    # by hand: WLS of ln s² − (ψ(h) − ln h) on log2 N with weights 1/ψ'(h), h = (N − 1)/2
    h = (vanilla["n"].to_numpy(float) - 1) / 2
    x = np.log2(vanilla["n"].to_numpy(float))
    y = np.log(vanilla["student_auc_sd"].to_numpy() ** 2) - (special.digamma(h) - np.log(h))
    slope = np.polyfit(x, y, 1, w=np.sqrt(1 / special.polygamma(1, h)))[0]  # polyfit weights multiply residuals
    assert trend.estimate == pytest.approx(math.exp(slope * math.log2(5) / 2), rel=1e-9)
    spread = c2[c2.quantity == "best − worst student AUC (vanilla-mean, N=10)"].iloc[0]
    at10 = table[(table["n"] == 10) & (table["variant"] == "vanilla-mean")]
    sd10 = (at10["student_auc_sd"] / c4(10)).mean()
    assert spread.estimate == pytest.approx(100 * at10["spread"].mean())
    assert spread.verdict == "not tested" and spread.rule == "not tested"
    assert f"d_10 × SD = 3.078 × {100 * sd10:.3f} = {100 * expected_range(10) * sd10:.3f} AUC points" in spread.note
    assert not c2.quantity.str.contains("best − worst student AUC, fitted change").any()


def test_kdef_and_dml_are_read_by_the_same_rule_on_the_same_numbers():
    def se(variant, n, seed):  # a per-run noise figure that differs between runs (pooled as an RMS)
        return 0.001 + 0.0002 * seed

    table = _claims_table(np.random.default_rng(5), variants=("dml",), se=se)
    table = pd.concat([table, table[table["variant"] == "dml"].assign(variant="kdef")], ignore_index=True)
    concat = table[table["variant"] == "dml"].assign(variant="vanilla-concat", student_auc_diff_se=0.05)
    claims = evaluate_claims(pd.concat([table, concat], ignore_index=True))
    cols = ["quantity", "estimate", "ci_low", "ci_high", "runs", "rule", "verdict", "note"]
    dml = claims[claims.claim == "C5"][cols].reset_index(drop=True)
    kdef = claims[(claims.claim == "C6") & claims.quantity.str.contains("ensemble − worst|SD within|ensemble − best")]
    kdef = kdef[cols].reset_index(drop=True)
    assert len(dml) == 3
    pd.testing.assert_frame_equal(dml.assign(quantity=dml.quantity.str.replace("dml", "kdef")), kdef)
    # τ by hand: RMS of the per-run SE over the 50 DML and KDEF runs (N ≥ 2; vanilla-concat and N = 1 left out)
    rms = math.sqrt(np.mean([se("", 0, s) ** 2 for s in range(SEEDS)]))
    tau = NOISE_Z * 100 * rms
    assert dml.rule.tolist() == [f"< {tau:.3g}", f"< {tau / math.sqrt(2):.3g}", f"< {tau:.3g}"]
    assert f"SE = {100 * rms:.3f} AUC points" in dml.note[0] and "over 50 of 50 runs" in dml.note[0]
    # 0.79 − worst of N = 10 students drawn around 0.78 is ~1.5 points: far above ~0.24 points of noise
    assert dml.verdict[0] == "contradicted"


def test_without_a_noise_figure_the_threshold_is_unavailable_not_borrowed():
    table = _claims_table(np.random.default_rng(9), variants=("dml", "kdef"))
    assert "student_auc_diff_se" not in table
    for frame in (table, table.assign(student_auc_diff_se=np.nan)):
        claims = evaluate_claims(frame)
        rows = claims[claims.verdict == "threshold unavailable"]
        assert sorted(rows.claim) == ["C5"] * 3 + ["C6"] * 3
        assert set(rows.verdict) == {"threshold unavailable"} and set(rows.rule) == {"< τ (unavailable)"}
        assert rows.note.str.contains("none of the 50 runs stores student_auc_diff_se").all()
        assert not claims.rule.isin(["< 0.01"]).any()
    assert math.isnan(noise_threshold(table).se)


def test_c7_reads_only_the_relative_spread_of_lambda_and_mu():
    rows = [{"variant": "kdef", "n": 4, "seed": s, "member": "ensemble", "ensemble_auc": 0.79,
             "lambda_mean": 0.25, "lambda_std": 0.0025 * (1 + s), "mu_mean": 1 / 3, "mu_std": 0.05}
            for s in range(3)]
    c7 = evaluate_claims(pd.DataFrame(rows)).query("claim == 'C7'")
    assert c7.quantity.tolist() == ["relative spread std/mean of λ (kdef, N=4)",
                                    "relative spread std/mean of μ (kdef, N=4)"]
    lam = c7.iloc[0]
    ref = stats.t.interval(0.95, 2, loc=0.02, scale=0.01 / math.sqrt(3))
    assert lam.estimate == pytest.approx(0.02) and (lam.ci_low, lam.ci_high) == pytest.approx(ref)
    assert lam.verdict == "supported"  # [−0.005, 0.045] lies below 0.1
    assert c7.iloc[1].estimate == pytest.approx(0.15) and c7.iloc[1].verdict == "contradicted"
