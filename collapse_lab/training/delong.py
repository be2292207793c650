"""DeLong's covariance of correlated AUCs on one test split, and the noise figure ``student_auc_diff_se``.

Scores s_k of K models on the same m positives X and n negatives Y. The placement values (DeLong, DeLong &
Clarke-Pearson 1988, Biometrics 44:837, §2)

.. math::

    V_{10}^{(k)}(X_i) = \\tfrac{1}{n}\\sum_j \\psi(X_i, Y_j), \\quad
    V_{01}^{(k)}(Y_j) = \\tfrac{1}{m}\\sum_i \\psi(X_i, Y_j), \\quad
    \\psi(x, y) = [x > y] + \\tfrac12 [x = y]

average to the AUC of every model, and the AUCs' covariance is estimated by

.. math::

    S = \\tfrac{1}{m} S_{10} + \\tfrac{1}{n} S_{01}, \\qquad
    \\operatorname{Var}(\\widehat{AUC}_a - \\widehat{AUC}_b) = S_{aa} + S_{bb} - 2 S_{ab}

with S_10, S_01 the sample covariance matrices (ddof = 1) of the placement values over positives and negatives.
The placements come from mid-ranks (Sun & Xu 2014, IEEE Signal Process. Lett. 21:1389, "fast DeLong"):
V_10(X_i) = (rank of X_i among all m + n scores − rank among the positives) / n, computed with
``scipy.stats.rankdata`` (ties get the average rank, i.e. count 1/2 as in ψ).

**Noise figure.** ``student_auc_diff_se`` of a run is the root mean square, over every pair a < b of its N
students, of DeLong's standard error of AUC(student a) − AUC(student b) on the test split:

.. math::

    \\mathrm{SE}_{\\text{pair}} = \\Big(\\binom{N}{2}^{-1} \\sum_{a<b} \\operatorname{Var}(\\widehat{AUC}_a -
    \\widehat{AUC}_b)\\Big)^{1/2}

(AUC units; undefined, None, for N = 1). It says how far two students' test AUCs move apart from test-set
sampling alone, paired on the same rows — the scale against which "students within noise of each other" is
judged (the student spread and the ensemble − student gap of the paper's limitations 2 and 3, arXiv 2411.16122).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from collapse_lab.errors import UserError

__all__ = ["delong_covariance", "student_auc_diff_se"]


def delong_covariance(labels: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(aucs (K,), covariance (K, K))`` of the AUCs of the K score columns (DeLong's estimator).

    Args:
        labels: (R,) 0/1 labels.
        scores: (R,) or (R, K) scores (any monotone transform of a probability: logits are fine).

    Example (one perfectly ranked and one reversed column: AUC 1 and 0, no variance):
        >>> aucs, cov = delong_covariance(np.array([1, 1, 0, 0]), np.array([[4., 1.], [3., 2.], [2., 3.], [1., 4.]]))
        >>> aucs.tolist(), float(np.abs(cov).max())
        ([1.0, 0.0], 0.0)
    """
    from scipy.stats import rankdata

    y = np.asarray(labels).astype(float).ravel()
    s = np.asarray(scores, dtype=float)
    s = s[:, None] if s.ndim == 1 else s
    if s.shape[0] != y.size:
        raise UserError(f"DeLong: {y.size} labels but {s.shape[0]} score rows")
    pos, neg = s[y == 1], s[y == 0]
    m, n = pos.shape[0], neg.shape[0]
    if m < 2 or n < 2:
        raise UserError(f"DeLong needs at least 2 positives and 2 negatives (got {m} and {n})")
    combined = rankdata(np.vstack([pos, neg]), axis=0)  # mid-ranks among all m + n scores, per column
    v10 = (combined[:m] - rankdata(pos, axis=0)) / n  # per positive: share of negatives below it (ties 1/2)
    v01 = 1.0 - (combined[m:] - rankdata(neg, axis=0)) / m  # per negative: share of positives above it
    aucs = v10.mean(axis=0)
    cov = np.atleast_2d(np.cov(v10, rowvar=False)) / m + np.atleast_2d(np.cov(v01, rowvar=False)) / n
    return aucs, cov


def student_auc_diff_se(labels: np.ndarray, logits: np.ndarray) -> Optional[float]:
    """Root mean square over student pairs of DeLong's SE of a paired AUC difference (module docstring).

    Args:
        labels: (R,) 0/1 labels of the split.
        logits: (R, N) student logits.

    Returns:
        The noise figure in AUC units, or None when there are fewer than 2 students.
    """
    z = np.asarray(logits, dtype=float)
    if z.ndim != 2 or z.shape[1] < 2:
        return None
    _, cov = delong_covariance(labels, z)
    a, b = np.triu_indices(z.shape[1], k=1)
    var = np.diag(cov)[a] + np.diag(cov)[b] - 2.0 * cov[a, b]
    return float(np.sqrt(np.mean(np.maximum(var, 0.0))))
