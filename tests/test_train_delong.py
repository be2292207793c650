"""DeLong's covariance of paired AUCs and the per-run noise figure, against brute force and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from collapse_lab.errors import UserError
from collapse_lab.training.delong import delong_covariance, student_auc_diff_se
from collapse_lab.training.evaluation import summarize


def _scores(rows=400, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.4).astype(float)
    base = rng.normal(size=rows) + 0.9 * y
    z = np.stack([base + 0.7 * rng.normal(size=rows), base + 0.7 * rng.normal(size=rows),
                  rng.normal(size=rows) + 0.3 * y], axis=1)
    return y, (np.round(z, 1) if ties else z)


def _brute_force(y, z):
    """DeLong et al. (1988) §2 literally: ψ over every (positive, negative) pair, placements, covariances."""
    pos, neg = z[y == 1], z[y == 0]
    m, n = len(pos), len(neg)
    psi = (pos[:, None, :] > neg[None, :, :]) + 0.5 * (pos[:, None, :] == neg[None, :, :])  # (m, n, K)
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    aucs = psi.mean(axis=(0, 1))
    s10 = (v10 - aucs).T @ (v10 - aucs) / (m - 1)
    s01 = (v01 - aucs).T @ (v01 - aucs) / (n - 1)
    return aucs, s10 / m + s01 / n


@pytest.mark.parametrize("ties", [False, True])
def test_fast_delong_equals_the_pairwise_definition_and_sklearn(ties):
    y, z = _scores(ties=ties)
    aucs, cov = delong_covariance(y, z)
    ref_aucs, ref_cov = _brute_force(y, z)
    assert aucs == pytest.approx(ref_aucs, abs=1e-12)
    assert aucs == pytest.approx([roc_auc_score(y, z[:, k]) for k in range(3)], abs=1e-12)
    assert cov == pytest.approx(ref_cov, abs=1e-15)
    assert np.allclose(cov, cov.T)


def test_the_noise_figure_matches_a_paired_bootstrap():
    """SE of AUC_0 − AUC_1 on 3,000 rows: DeLong within 10% of a 500-resample paired bootstrap (the bootstrap
    SE's own relative error is about 1/sqrt(2·500) = 3.2%)."""
    y, z = _scores(rows=3000, seed=1)
    rng = np.random.default_rng(2)
    diffs = []
    for _ in range(500):
        i = rng.integers(0, y.size, y.size)
        diffs.append(roc_auc_score(y[i], z[i, 0]) - roc_auc_score(y[i], z[i, 1]))
    boot = float(np.std(diffs, ddof=1))
    _, cov = delong_covariance(y, z)
    pair = float(np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]))
    assert pair == pytest.approx(boot, rel=0.10)
    assert student_auc_diff_se(y, z[:, :2]) == pytest.approx(pair, rel=1e-12)


def test_noise_figure_is_the_rms_over_all_student_pairs():
    y, z = _scores()
    _, cov = delong_covariance(y, z)
    var = [cov[a, a] + cov[b, b] - 2 * cov[a, b] for a, b in ((0, 1), (0, 2), (1, 2))]
    assert student_auc_diff_se(y, z) == pytest.approx(np.sqrt(np.mean(var)), rel=1e-12)
    assert student_auc_diff_se(y, z[:, :1]) is None  # one student: no pair
    # identical students: no paired noise at all
    assert student_auc_diff_se(y, np.stack([z[:, 0], z[:, 0]], axis=1)) == pytest.approx(0.0, abs=1e-12)


def test_degenerate_splits_are_user_errors():
    with pytest.raises(UserError, match="at least 2 positives and 2 negatives"):
        delong_covariance(np.array([1, 0, 0, 0]), np.array([0.3, 0.2, 0.1, 0.0]))
    with pytest.raises(UserError, match="3 labels but 2 score rows"):
        delong_covariance(np.array([1, 0, 1]), np.array([0.3, 0.2]))


def test_summary_carries_the_student_sd_and_the_noise_figure():
    metrics = {"ensemble": {"auc": 0.8, "logloss": 0.4}, "0": {"auc": 0.70, "logloss": 0.5},
               "1": {"auc": 0.75, "logloss": 0.45}, "2": {"auc": 0.77, "logloss": 0.44}}
    s = summarize(metrics, student_auc_diff_se=0.004)
    assert s["student_auc_sd"] == pytest.approx(np.std([0.70, 0.75, 0.77], ddof=1))
    assert s["student_auc_diff_se"] == 0.004
    one = summarize({"ensemble": {"auc": 0.8, "logloss": 0.4}, "0": {"auc": 0.8, "logloss": 0.4}})
    assert one["student_auc_sd"] is None and one["student_auc_diff_se"] is None
