"""Evaluation of an ensemble: AUC and logloss for every student and for the fused ensemble prediction.

Predictions follow the paper's code (docs/method.md §2.3, §4.8): the ensemble predicts
``p_t = sigmoid(fused_logit)`` (mean fusion: ``sigmoid((1/N) sum_k z_k)``) and student k predicts
``p_k = sigmoid(z_k)``, each scored on its own. Metrics are scikit-learn's ``roc_auc_score`` and ``log_loss``
on the concatenated float64 predictions of the whole split, as FuxiCTR/BARS report them (docs/method.md §6.2):

    AUC     = P(p_i > p_j | y_i = 1, y_j = 0)       (ties count 1/2)
    logloss = -(1/R) sum_i [ y_i log p_i + (1 - y_i) log(1 - p_i) ]

The summary adds best/worst student (by AUC), ``spread = best - worst`` and ``gap = ensemble - best`` (paper
limitations 2 and 3), ``student_auc_sd`` = the standard deviation (ddof = 1) of the N student AUCs, and the
test split's noise figure ``student_auc_diff_se`` (DeLong's SE of a paired student AUC difference,
:mod:`collapse_lab.training.delong`; None for N = 1).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Tuple

import numpy as np

from collapse_lab.errors import UserError
from collapse_lab.io.contract import student_summary

__all__ = ["predict", "score", "score_members", "evaluate", "summarize"]


def predict(model: Any, batches: Iterable[Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model`` in eval mode over ``batches``.

    Returns:
        ``(labels (R,), student_logits (R, N), fused_logits (R,))``, all float64 numpy arrays.
    """
    import torch

    was_training = model.training
    model.eval()
    labels, logits, fused = [], [], []
    try:
        with torch.no_grad():
            for batch in batches:
                out = model(batch.ids, values=batch.values)
                labels.append(batch.labels.detach())  # kept on the device: no host sync per batch
                logits.append(out["logits"].detach())  # (B, N)
                fused.append(out["fused_logit"].detach())  # (B,)
    finally:
        model.train(was_training)
    if not labels:
        raise UserError("cannot evaluate an empty split")

    def host(parts: list) -> np.ndarray:  # one copy per split (float32 -> float64 is exact either way)
        return torch.cat(parts).to("cpu", torch.float64).numpy()

    return host(labels), host(logits), host(fused)


def score(labels: np.ndarray, probs: np.ndarray, split: str = "split") -> Dict[str, float]:
    """AUC and logloss of float64 probabilities (sklearn).

    Example:
        >>> score(np.array([0., 1., 1., 0.]), np.array([0.1, 0.8, 0.4, 0.3]))["auc"]
        1.0
    """
    from sklearn.metrics import log_loss, roc_auc_score

    labels = np.asarray(labels, dtype=np.float64)
    if np.unique(labels).size < 2:
        raise UserError(f"{split}: the split has only one class (label {labels[0] if labels.size else '?'}); "
                        "AUC is undefined — use a larger split")
    probs = np.asarray(probs, dtype=np.float64)
    if not np.all(np.isfinite(probs)):
        raise UserError(f"{split}: the model predicts non-finite probabilities (diverged training?)")
    return {"auc": float(roc_auc_score(labels, probs)), "logloss": float(log_loss(labels, probs, labels=[0, 1]))}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


def score_members(labels: np.ndarray, logits: np.ndarray, fused: np.ndarray,
                  split: str = "split") -> Dict[str, Dict[str, float]]:
    """``{"ensemble": {...}, "0": {...}, ..., "N-1": {...}}`` from logits (probabilities = sigmoid)."""
    metrics = {"ensemble": score(labels, _sigmoid(fused), split)}
    for k in range(logits.shape[1]):
        metrics[str(k)] = score(labels, _sigmoid(logits[:, k]), split)
    return metrics


def evaluate(model: Any, batches: Iterable[Any], split: str = "split") -> Dict[str, Dict[str, float]]:
    """Predict ``batches`` and score the ensemble and every student."""
    return score_members(*predict(model, batches), split=split)


def summarize(metrics: Mapping[str, Mapping[str, float]],
              transfer: Mapping[str, float | None] | None = None,
              student_auc_diff_se: float | None = None) -> Dict[str, Any]:
    """Summary of a split's metrics (manifest ``results.summary``).

    Args:
        metrics: output of :func:`score_members`.
        transfer: ``lambda_mean, lambda_std, mu_mean, mu_std`` of the last training epoch (None = no EM weights).
        student_auc_diff_se: the split's noise figure (:func:`collapse_lab.training.delong.student_auc_diff_se`).

    Example:
        >>> m = {"ensemble": {"auc": 0.8, "logloss": 0.4}, "0": {"auc": 0.7, "logloss": 0.5},
        ...      "1": {"auc": 0.75, "logloss": 0.45}}
        >>> s = summarize(m)
        >>> s["best_student"], s["worst_student"], round(s["spread"], 10), round(s["gap"], 10)
        (1, 0, 0.05, 0.05)
        >>> round(s["student_auc_sd"], 10)  # |0.75 - 0.7| / sqrt(2)
        0.0353553391
    """
    gaps = student_summary(metrics)  # best/worst, spread, gap: the one definition (collapse_lab/io/contract.py)
    sd = gaps["student_auc_sd"]
    transfer = dict(transfer or {})
    return {
        "ensemble_auc": metrics["ensemble"]["auc"],
        "ensemble_logloss": metrics["ensemble"]["logloss"],
        **{key: gaps[key] for key in ("best_student", "best_student_auc", "worst_student", "worst_student_auc",
                                      "spread", "gap")},
        "student_auc_sd": None if math.isnan(sd) else sd,
        "student_auc_diff_se": student_auc_diff_se,
        **{key: transfer.get(key) for key in ("lambda_mean", "lambda_std", "mu_mean", "mu_std")},
    }
