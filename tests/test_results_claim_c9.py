"""Claim C9 (knowledge transfer narrows the shared embedding) on hand-built run tables: the fitted change of the
embedding ratio over N ≥ 2 (scipy.stats.linregress reference) and the paired difference to vanilla-mean."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collapse_lab.results.claims import CLAIMS, evaluate_claims


def _table(with_erank: bool = True) -> pd.DataFrame:
    """vanilla-mean flat at 0.70 (± seed), KD falling 0.05 per doubling of N, DML constant; seeds 0..2."""
    rows = []
    noise = [0.0, 0.01, -0.01]
    for seed, e in enumerate(noise):
        rows.append({"variant": "vanilla-mean", "n": 1, "seed": seed, "member": "ensemble",
                     "ensemble_auc": 0.78, "emb_ia_ratio_mean": 0.70 + e})
        for n in (2, 4, 8):
            rows.append({"variant": "vanilla-mean", "n": n, "seed": seed, "member": "ensemble",
                         "ensemble_auc": 0.78, "emb_ia_ratio_mean": 0.70 + e})
            rows.append({"variant": "kd", "n": n, "seed": seed, "member": "ensemble", "ensemble_auc": 0.78,
                         "emb_ia_ratio_mean": 0.70 + e - 0.05 * math.log2(n) + 0.003 * seed})
            rows.append({"variant": "dml", "n": n, "seed": seed, "member": "ensemble", "ensemble_auc": 0.78,
                         "emb_ia_ratio_mean": 0.70 + e + 0.002 * seed * (n == 8)})
    df = pd.DataFrame(rows)
    if with_erank:
        df["emb_erank_ratio_mean"] = df["emb_ia_ratio_mean"] - 0.1
    return df


def test_c9_trend_and_paired_difference_match_scipy():
    df = _table()
    claims = evaluate_claims(df)
    c9 = claims[claims["claim"] == "C9"]
    assert set(c9["statement"]) == {CLAIMS["C9"]}
    by = {r.quantity: r for r in c9.itertuples()}
    kd = df[(df["variant"] == "kd") & (df["n"] >= 2)]
    fit = stats.linregress(np.log2(kd["n"]), kd["emb_ia_ratio_mean"])
    t = stats.t.ppf(0.975, len(kd) - 2)
    span = math.log2(8 / 2)
    row = by["embedding IA / Gaussian, fitted change N=2→8 (kd, N=2,4,8; OLS on log2 N)"]
    assert row.estimate == pytest.approx(fit.slope * span) == pytest.approx(-0.10)
    assert (row.ci_low, row.ci_high) == pytest.approx(((fit.slope - t * fit.stderr) * span,
                                                       (fit.slope + t * fit.stderr) * span))
    assert row.unit == "ratio" and row.rule == "< 0" and row.verdict == "supported"
    # paired over seeds at KD's largest N: d_s = −0.15 + 0.003 s
    paired = by["embedding IA / Gaussian, kd − vanilla-mean (N=8)"]
    d = np.array([-0.15, -0.147, -0.144])
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert paired.estimate == pytest.approx(d.mean()) and (paired.ci_low, paired.ci_high) == pytest.approx(
        (ci.low, ci.high))
    assert paired.runs == "3" and paired.verdict == "supported"
    # DML's embedding is as spread out as vanilla-mean's: its paired interval straddles 0
    assert by["embedding IA / Gaussian, dml − vanilla-mean (N=8)"].verdict == "inconclusive"
    # vanilla-mean's own line is the reference, drawn from N = 2 (the single model is not in the fit), not tested
    ref = by["embedding IA / Gaussian, fitted change N=2→8 (vanilla-mean, N=2,4,8; OLS on log2 N)"]
    assert ref.estimate == pytest.approx(0.0, abs=1e-12) and ref.verdict == "not tested"
    # the effective-rank ratio gets the same rows (shifted values: same slopes and differences)
    erank = by["embedding effective rank / Gaussian, kd − vanilla-mean (N=8)"]
    assert erank.estimate == pytest.approx(paired.estimate)


def test_c9_over_training_pairs_the_change_from_initialisation():
    """With spectra_trace.csv the runs carry emb_*_ratio_change (last step − step 0); C9 pairs it over seeds."""
    df = _table(with_erank=False)
    df["emb_ia_ratio_change"] = np.where(df["variant"] == "kd", -0.20, -0.02) + 0.01 * df["seed"] * (
        df["variant"] == "kd")
    claims = evaluate_claims(df)
    row = claims[claims["quantity"] == "embedding IA / Gaussian, change over training (last step − initialisation), "
                                       "kd − vanilla-mean (N=8)"].iloc[0]
    d = np.array([-0.18, -0.17, -0.16])
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert row["estimate"] == pytest.approx(d.mean()) and (row["ci_low"], row["ci_high"]) == pytest.approx(
        (ci.low, ci.high))
    assert row["verdict"] == "supported" and row["runs"] == "3"


def test_c9_reads_only_the_measures_present():
    claims = evaluate_claims(_table(with_erank=False))
    quantities = claims.loc[claims["claim"] == "C9", "quantity"]
    assert len(quantities) == 5 and not quantities.str.contains("effective rank").any()
    none = evaluate_claims(_table(with_erank=False).drop(columns="emb_ia_ratio_mean"))
    assert "C9" not in set(none["claim"])
