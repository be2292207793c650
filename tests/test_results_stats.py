"""Mean ± t confidence intervals and paired tests against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collapse_lab.results.stats import bh_adjust, mean_ci, paired_tests, slope_ci, summarize
from collapse_lab.results.writer import format_summary

T975_DF2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (tables)


def _runs(rows):
    df = pd.DataFrame(rows, columns=["variant", "n", "seed", "ensemble_auc"])
    split = df["variant"].str.partition("-")
    return df.assign(dataset="d", member="ensemble", method=split[0],
                     fusion=np.where(split[2] == "", "mean", split[2]))


def test_mean_ci_hand_computed():
    mean, std, lo, hi = mean_ci([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72) and std == pytest.approx(0.02)
    half = T975_DF2 * 0.02 / math.sqrt(3)  # 0.0496827...
    assert (lo, hi) == pytest.approx((0.72 - half, 0.72 + half))
    m, s, lo, hi = mean_ci([0.5])
    assert m == 0.5 and math.isnan(s) and math.isnan(lo) and math.isnan(hi)
    assert mean_ci([0.3, 0.3]) == (0.3, 0.0, 0.3, 0.3)
    assert all(math.isnan(v) for v in mean_ci([]))
    # non-finite values are ignored
    assert mean_ci([0.70, np.nan, 0.72, 0.74]) == pytest.approx(mean_ci([0.70, 0.72, 0.74]))


def test_summarize_per_setting():
    df = _runs([("kd", 2, 0, 0.70), ("kd", 2, 1, 0.72), ("kd", 2, 2, 0.74),
                ("kd", 4, 0, 0.80), ("vanilla-mean", 2, 0, 0.60)])
    out = summarize(df, metrics=["ensemble_auc"])
    row = out[(out["variant"] == "kd") & (out["n"] == 2)].iloc[0]
    assert row["runs"] == 3 and row["mean"] == pytest.approx(0.72) and row["std"] == pytest.approx(0.02)
    assert row["ci_half"] == pytest.approx(T975_DF2 * 0.02 / math.sqrt(3))
    single = out[(out["variant"] == "kd") & (out["n"] == 4)].iloc[0]
    assert single["runs"] == 1 and single["mean"] == 0.80 and math.isnan(single["ci_low"])
    assert len(out) == 3
    # student rows are ignored: only the ensemble rows carry per-run quantities
    with_students = pd.concat([df, df.assign(member="0", ensemble_auc=0.0)])
    assert summarize(with_students, metrics=["ensemble_auc"])["mean"].tolist() == out["mean"].tolist()
    text = format_summary(out)
    assert "0.7200 ± 0.0497 (n=3)" in text and "0.8000 (n=1)" in text


def test_summarize_keeps_cfg_columns_apart():
    df = _runs([("kd", 2, 0, 0.70), ("kd", 2, 1, 0.80)]).assign(cfg_lr=[0.1, 0.2])
    out = summarize(df, metrics=["ensemble_auc"])
    assert sorted(out["mean"]) == [0.70, 0.80] and list(out["runs"]) == [1, 1]


def test_paired_t_test_over_matching_seeds():
    van = [0.70, 0.71, 0.75]
    kd = [0.71, 0.73, 0.79]  # differences 0.01, 0.02, 0.04
    rows = [("vanilla-mean", 2, s, a) for s, a in enumerate(van)] + [("kd", 2, s, a) for s, a in enumerate(kd)]
    rows.append(("kd", 2, 9, 0.99))  # no partner seed: left out of the pairs
    out = paired_tests(_runs(rows), metrics=["ensemble_auc"])
    assert len(out) == 1
    row = out.iloc[0]
    assert (row["variant"], row["baseline"], row["pairs"]) == ("kd", "vanilla-mean", 3)
    d = np.array([0.01, 0.02, 0.04])
    assert row["mean_diff"] == pytest.approx(d.mean())
    half = T975_DF2 * d.std(ddof=1) / math.sqrt(3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    ref = stats.ttest_rel(kd, van)
    assert row["t"] == pytest.approx(ref.statistic) and row["p_ttest"] == pytest.approx(ref.pvalue)
    assert row["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3)))
    assert math.isnan(row["p_wilcoxon"])  # fewer than 6 pairs


def test_wilcoxon_with_six_pairs_hand_computed():
    base = [0.70, 0.71, 0.72, 0.73, 0.74, 0.75]
    diffs = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]  # all positive: W = 0, exact p = 2 / 2**6
    rows = [("vanilla-mean", 3, s, a) for s, a in enumerate(base)]
    rows += [("kdef", 3, s, a + d) for s, (a, d) in enumerate(zip(base, diffs, strict=True))]
    row = paired_tests(_runs(rows), metrics=["ensemble_auc"]).iloc[0]
    assert row["pairs"] == 6 and row["wilcoxon_stat"] == 0.0
    assert row["p_wilcoxon"] == pytest.approx(2 / 2**6)


def test_paired_tests_pair_every_two_recipes_per_n():
    rows = []
    for variant in ("vanilla-mean", "kd", "kdef"):
        for n in (2, 4):
            rows += [(variant, n, s, 0.7 + 0.01 * s) for s in range(2)]
    out = paired_tests(_runs(rows), metrics=["ensemble_auc"])
    assert len(out) == 2 * 3  # 2 values of N x 3 pairs of recipes
    assert set(zip(out["variant"], out["baseline"], strict=True)) == {("kd", "vanilla-mean"),
                                                                       ("kdef", "vanilla-mean"), ("kdef", "kd")}
    assert (out["mean_diff"] == 0).all() and out["t"].isna().all()  # identical values: no t statistic


def test_benjamini_hochberg_by_hand_and_one_family_per_metric():
    # m = 4: sorted p (0.001, 0.01, 0.03, 0.04) × 4 / rank = (0.004, 0.02, 0.04, 0.04); monotone from the top
    assert bh_adjust([0.04, 0.001, np.nan, 0.03, 0.01]) == pytest.approx([0.04, 0.004, np.nan, 0.04, 0.02],
                                                                          nan_ok=True)
    assert np.isnan(bh_adjust([np.nan])).all() and bh_adjust([]).size == 0
    rng = np.random.default_rng(0)
    rows = [("vanilla-mean", n, s, 0.78 + rng.normal(0, 0.002)) for n in (2, 4) for s in range(6)]
    rows += [(v, n, s, 0.785 + rng.normal(0, 0.002)) for v in ("kd", "kdef") for n in (2, 4) for s in range(6)]
    df = _runs(rows)
    df["gap"] = rng.normal(0, 0.001, len(df))
    out = paired_tests(df, metrics=("ensemble_auc", "gap"))
    for _, family in out.groupby("metric"):
        assert len(family) == 6  # 3 pairs of recipes × 2 N
        ref = stats.false_discovery_control(family["p_ttest"].to_numpy(), method="bh")
        assert family["p_ttest_bh"].to_numpy() == pytest.approx(ref)
        ref = stats.false_discovery_control(family["p_wilcoxon"].to_numpy(), method="bh")
        assert family["p_wilcoxon_bh"].to_numpy() == pytest.approx(ref)
    assert (out["p_ttest_bh"] >= out["p_ttest"]).all()


def test_weighted_slope_is_ols_on_rows_scaled_by_sqrt_w():
    x = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    y = np.array([0.9, 1.3, 2.2, 2.7, 3.4, 4.1])
    w = np.array([0.5, 0.5, 1.0, 2.0, 2.0, 4.0])
    b, lo, hi, k = slope_ci(x, y, weights=w)
    design = np.stack([np.sqrt(w), np.sqrt(w) * x], axis=1)  # intercept and slope columns, scaled
    coef, rss, *_ = np.linalg.lstsq(design, np.sqrt(w) * y, rcond=None)
    cov = rss[0] / (len(x) - 2) * np.linalg.inv(design.T @ design)
    half = stats.t.ppf(0.975, len(x) - 2) * math.sqrt(cov[1, 1])
    assert (b, lo, hi, k) == pytest.approx((coef[1], coef[1] - half, coef[1] + half, 6))
    assert slope_ci(x, y, weights=np.ones_like(x)) == pytest.approx(slope_ci(x, y))
