"""Claims C1-C8: quantities with Welch/paired intervals and verdicts, on hand-built run tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collapse_lab.results.claims import CLAIMS, evaluate_claims, format_claims, welch_ci


def _run(variant, n, seed, auc, **extra):
    method, _, fusion = variant.partition("-")
    return {"variant": variant, "method": method, "fusion": fusion or "mean", "n": n, "seed": seed,
            "member": "ensemble", "ensemble_auc": auc, **extra}


def _table():
    rows = []
    for seed, base in enumerate([0.780, 0.782, 0.784]):
        rows.append(_run("vanilla-mean", 1, seed, base, best_student_auc=base, worst_student_auc=base, gap=0.0,
                         ensemble_logloss=0.50, best_ka_layer1=0.30, best_ka_layer2=0.10))
        rows.append(_run("vanilla-mean", 4, seed, base - 0.002, best_student_auc=base - 0.03,
                         worst_student_auc=base - 0.04, gap=0.028, ensemble_logloss=0.50 + 0.001 * seed,
                         best_ka_layer1=0.25, best_ka_layer2=0.05 + 0.01 * seed))
        rows.append(_run("kdef", 4, seed, base + 0.003, best_student_auc=base + 0.0025,
                         worst_student_auc=base + 0.002, gap=0.0005, ensemble_logloss=0.502 + 0.001 * seed,
                         best_ka_layer1=0.40, best_ka_layer2=0.20 + 0.02 * seed, lambda_mean=0.25,
                         lambda_std=0.005 + 0.001 * seed, student_auc_diff_se=0.0005))
    return pd.DataFrame(rows)


def test_welch_matches_scipy():
    a, b = [0.1, 0.4, 0.35, 0.2], [0.0, 0.05, 0.1]
    d, lo, hi = welch_ci(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert d == pytest.approx(np.mean(a) - np.mean(b)) and (lo, hi) == pytest.approx((ref.low, ref.high))
    assert math.isnan(welch_ci([1.0], [0.0, 1.0])[1]) and welch_ci([1.0], [0.0, 1.0])[0] == 0.5


def test_quantities_and_verdicts():
    claims = evaluate_claims(_table())
    by = {(r.claim, r.quantity): r for r in claims.itertuples()}
    c1 = by[("C1", "ensemble AUC (vanilla-mean, N=4) − single model AUC")]
    # identical spreads in both groups shifted by -0.002: difference -0.2 AUC points, CI from Welch
    ref = stats.ttest_ind([0.778, 0.780, 0.782], [0.780, 0.782, 0.784], equal_var=False).confidence_interval()
    assert c1.estimate == pytest.approx(-0.2) and (c1.ci_low, c1.ci_high) == pytest.approx((100 * ref.low,
                                                                                              100 * ref.high))
    assert c1.rule == "< 0.1" and c1.verdict == "inconclusive"  # the interval reaches above +0.1 points
    c2 = by[("C2", "best student AUC (vanilla-mean, N=4) − single model AUC")]
    assert c2.estimate == pytest.approx(-3.0) and c2.verdict == "supported"
    assert by[("C2", "ensemble − best student AUC (vanilla-mean, N=4)")].verdict == "supported"
    depth = by[("C3", "KA layer 1 − KA layer 2 (single model)")]
    assert depth.estimate == pytest.approx(20.0) and depth.ci_low == depth.ci_high == pytest.approx(20.0)
    assert depth.verdict == "supported"
    kdef_ka = by[("C3", "KA layer 2: best student, kdef − vanilla-mean (N=4)")]
    d = np.array([0.20, 0.22, 0.24]) - np.array([0.05, 0.06, 0.07])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert kdef_ka.estimate == pytest.approx(100 * d.mean())
    assert (kdef_ka.ci_low, kdef_ka.ci_high) == pytest.approx((100 * (d.mean() - half), 100 * (d.mean() + half)))
    assert kdef_ka.verdict == "supported"
    gap = by[("C6", "ensemble − best student AUC (kdef, N=4)")]
    assert gap.rule == "< 0.098" and gap.verdict == "supported"  # 0.05 points < 1.96 × 0.05 points of noise
    c7 = by[("C7", "relative spread std/mean of λ (kdef, N=4)")]
    assert c7.estimate == pytest.approx(np.mean([0.02, 0.024, 0.028])) and c7.verdict == "supported"
    c8 = by[("C8", "ensemble logloss, kdef − vanilla-mean (N=4)")]
    assert c8.estimate == pytest.approx(0.002) and c8.ci_low == pytest.approx(0.002) and c8.verdict == "supported"
    assert set(claims["statement"]) <= set(CLAIMS.values())
    assert not any(claims["claim"].isin(["C4", "C5"]))  # no KD or DML runs: those quantities are left out


def test_c3_is_also_read_scale_free_on_the_effective_rank_ratio():
    rows = []
    for seed in range(3):
        common = {"best_student_auc": 0.78, "worst_student_auc": 0.78, "gap": 0.0, "best_ka_layer1": 0.0,
                  "best_ka_layer2": 0.0}  # tau above every sigma: KA says nothing
        rows.append(_run("vanilla-mean", 1, seed, 0.78, best_erank_ratio_layer1=0.99,
                         best_erank_ratio_layer2=0.97 + 0.001 * seed, **common))
        rows.append(_run("vanilla-mean", 4, seed, 0.78, best_erank_ratio_layer1=0.98,
                         best_erank_ratio_layer2=0.90 + 0.002 * seed, **common))
        rows.append(_run("kdef", 4, seed, 0.79, best_erank_ratio_layer1=0.99,
                         best_erank_ratio_layer2=0.95 + 0.001 * seed, **common))
    claims = evaluate_claims(pd.DataFrame(rows)).query("claim == 'C3'")
    by = {r.quantity: r for r in claims.itertuples()}
    assert by["KA layer 2: best student, kdef − vanilla-mean (N=4)"].verdict == "inconclusive"  # 0 − 0
    depth = by["effective rank / Gaussian layer 1 − effective rank / Gaussian layer 2 (single model)"]
    assert depth.estimate == pytest.approx(0.99 - np.mean([0.97, 0.971, 0.972])) and depth.unit == "ratio"
    vanilla = by["effective rank / Gaussian layer 2: best student (vanilla-mean, N=4) − single model"]
    ref = stats.ttest_ind([0.90, 0.902, 0.904], [0.97, 0.971, 0.972], equal_var=False).confidence_interval()
    assert (vanilla.ci_low, vanilla.ci_high) == pytest.approx((ref.low, ref.high)) and vanilla.verdict == "supported"
    kdef = by["effective rank / Gaussian layer 2: best student, kdef − vanilla-mean (N=4)"]
    assert kdef.estimate == pytest.approx(0.05 - 0.001) and kdef.verdict == "supported"


def test_single_runs_are_inconclusive_and_markdown_table():
    one = _table()[lambda d: d["seed"] == 0]
    claims = evaluate_claims(one)
    assert set(claims["verdict"]) <= {"inconclusive", "supported"}
    c1 = claims[claims["claim"] == "C1"].iloc[0]
    assert math.isnan(c1["ci_low"]) and c1["verdict"] == "inconclusive" and c1["runs"] == "1 vs 1"
    text = format_claims(claims)
    assert text.splitlines()[0].startswith("| claim | quantity |")
    assert "| C1 | ensemble AUC (vanilla-mean, N=4) − single model AUC (AUC points) | -0.200 | 1 vs 1 | < 0.1 " \
           "| inconclusive |  |" in text


def test_mixed_settings_are_refused_instead_of_pooled():
    """Two runs with the same (recipe, N, seed) but different settings (e.g. exam on/off) must not be pooled."""
    from collapse_lab.errors import UserError

    table = pd.concat([_table().assign(cfg_exam=True), _table().assign(cfg_exam=False)], ignore_index=True)
    with pytest.raises(UserError, match="one run per"):
        evaluate_claims(table)


def test_dml_claim_uses_the_worst_student_and_the_noise_threshold():
    rows = [_run("vanilla-mean", 1, s, 0.78, best_student_auc=0.78, worst_student_auc=0.78, gap=0.0)
            for s in range(3)]
    # best student within 0.0002 of the ensemble, but the worst one 0.01 (1 AUC point) below; noise SE 0.1 points
    rows += [_run("dml", 4, s, 0.79 + 0.0001 * s, best_student_auc=0.7898 + 0.0001 * s,
                  worst_student_auc=0.78 + 0.0001 * s, gap=0.0002, spread=0.0098, student_auc_sd=0.004,
                  student_auc_diff_se=0.001) for s in range(3)]
    c5 = evaluate_claims(pd.DataFrame(rows)).query("claim == 'C5'")
    by = {q.split(" (dml")[0]: r for q, r in zip(c5.quantity, c5.itertuples(), strict=True)}
    worst = by["ensemble − worst student AUC"]
    assert worst.estimate == pytest.approx(1.0) and worst.rule == "< 0.196" and worst.verdict == "contradicted"
    sd = by["student AUC SD within a run (s/c4)"]
    c4_4 = math.sqrt(2 / 3) * 2 / math.sqrt(math.pi)  # c4(4) = sqrt(2/3) Γ(2)/Γ(3/2) = 0.9213
    assert sd.estimate == pytest.approx(0.4 / c4_4) and sd.rule == "< 0.139"  # τ/√2 = 0.196/√2
    assert sd.verdict == "contradicted"
    gap = by["ensemble − best student AUC"]
    assert gap.estimate == pytest.approx(0.02) and gap.verdict == "supported"
    assert "SE = 0.100 AUC points" in gap.note and "over 3 of 3 runs" in gap.note
    assert not c5.quantity.str.contains("best − worst").any()  # the range is no longer a C5 test


def test_trends_are_least_squares_lines_on_log2_n_reported_over_the_range():
    """C6's line starts at N = 2; the estimate is the fitted change slope · log2(N_max / N_min)."""
    rng = np.random.default_rng(0)
    rows, xs, ys, gx, gy = [], [], [], [], []
    for seed in range(3):
        single = 0.78 + rng.normal(0, 0.002)
        rows.append(_run("vanilla-mean", 1, seed, single, best_student_auc=single, gap=0.0))
        for n in (2, 4, 8):
            auc = 0.78 + 0.001 * math.log2(n) + rng.normal(0, 0.002)
            gap = 0.002 * math.log2(n) + rng.normal(0, 0.0005)
            rows.append(_run("kdef", n, seed, auc, best_student_auc=auc - gap, gap=gap))
            rows.append(_run("vanilla-mean", n, seed, 0.78, best_student_auc=0.78 - gap, gap=gap))
            xs.append(math.log2(n))
            ys.append(auc)
            gx.append(math.log2(n))
            gy.append(gap)
    claims = evaluate_claims(pd.DataFrame(rows))
    kdef = claims[claims.quantity == "ensemble AUC, fitted change N=2→8 (kdef, N=2,4,8; OLS on log2 N)"].iloc[0]
    ref = stats.linregress(xs, ys)
    half = stats.t.ppf(0.975, len(xs) - 2) * ref.stderr
    assert kdef.claim == "C6" and kdef.runs == "9" and kdef.rule == "> 0"
    assert kdef.estimate == pytest.approx(100 * 2 * ref.slope)  # two doublings from 2 to 8
    assert (kdef.ci_low, kdef.ci_high) == pytest.approx((200 * (ref.slope - half), 200 * (ref.slope + half)))
    gap = claims[claims.quantity.str.startswith("ensemble − best student AUC, fitted change N=2→8 (vanilla-mean")]
    assert len(gap) == 1 and gap.iloc[0].estimate == pytest.approx(200 * stats.linregress(gx, gy).slope)
    assert gap.iloc[0].verdict == "supported"
    c1 = claims[claims.quantity.str.startswith("ensemble AUC, fitted change N=1→8 (vanilla-mean, N=1,2,4,8;")]
    assert len(c1) == 1 and c1.iloc[0].rule == "< 0.1"


def test_a_significant_rise_is_not_flat_and_a_jump_then_decline_is_not_a_rise():
    """Counter-examples: C1 must not call a clearly rising vanilla curve flat; C6 must not call a curve that jumps
    at N = 2 and then declines "rising with N" (the N = 1 point would dominate a line through it)."""
    rows = []
    for seed in range(5):
        noise = 0.0002 * (seed - 2)
        rows.append(_run("vanilla-mean", 1, seed, 0.780 + noise))
        for n in (2, 4, 8, 16):
            rows.append(_run("vanilla-mean", n, seed, 0.780 + 0.0008 * math.log2(n) + noise))  # +0.32 points
            rows.append(_run("kdef", n, seed, 0.785 - 0.0005 * math.log2(n) + noise))  # jump, then decline
    claims = evaluate_claims(pd.DataFrame(rows))
    c1 = claims[(claims.claim == "C1") & claims.quantity.str.contains("fitted change")].iloc[0]
    assert c1.estimate == pytest.approx(0.32) and c1.verdict == "contradicted"
    c6 = claims[(claims.claim == "C6") & claims.quantity.str.contains("fitted change")].iloc[0]
    assert c6.estimate == pytest.approx(-0.15) and c6.verdict == "contradicted"


def test_slope_ci_edge_cases():
    from collapse_lab.results.stats import slope_ci

    assert all(math.isnan(v) for v in slope_ci([1.0, 1.0, 1.0], [0.0, 1.0, 2.0])[:3])  # one x: no slope
    b, lo, hi, k = slope_ci([0.0, 1.0], [0.0, 3.0])  # two points: a slope, no interval
    assert (b, k) == (3.0, 2) and math.isnan(lo) and math.isnan(hi)
    b, lo, hi, k = slope_ci([0.0, 1.0, 2.0, np.nan], [1.0, 3.0, 5.0, 9.0])  # exact line, NaN pair dropped
    assert (b, k) == pytest.approx((2.0, 3)) and (lo, hi) == pytest.approx((2.0, 2.0))
    assert slope_ci([0.0, 1.0, 2.0], [0.7, 0.7, 0.7])[:3] == pytest.approx((0.0, 0.0, 0.0))  # flat: zero width
    x, y = [0.0, 1.0, 2.0, 3.0, 5.0], [0.1, 0.9, 2.2, 2.8, 5.3]
    ref = stats.linregress(x, y)
    b, lo, hi, _ = slope_ci(x, y, 0.9)
    half = stats.t.ppf(0.95, 3) * ref.stderr
    assert (b, lo, hi) == pytest.approx((ref.slope, ref.slope - half, ref.slope + half))


def test_c3_is_also_read_on_the_ia_ratio():
    """The per-layer IA over a same-shape Gaussian's (best_ia_ratio_layer*) gets the same three C3 rows."""
    table = _table()
    table["best_ia_ratio_layer1"] = 1.0
    table["best_ia_ratio_layer2"] = np.select([table["n"] == 1, table["variant"] == "kdef"], [1.0, 0.99], 0.85) \
        + 0.001 * table["seed"]
    by = {r.quantity: r for r in evaluate_claims(table).itertuples()}
    kdef = by["IA / Gaussian layer 2: best student, kdef − vanilla-mean (N=4)"]
    assert kdef.estimate == pytest.approx(0.14) and kdef.ci_low == pytest.approx(0.14) and kdef.verdict == "supported"
    vanilla = by["IA / Gaussian layer 2: best student (vanilla-mean, N=4) − single model"]
    assert vanilla.estimate == pytest.approx(-0.15) and vanilla.verdict == "supported"
