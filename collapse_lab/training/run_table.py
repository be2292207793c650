"""The end-of-run table printed by ``collapse-lab train``: test AUC/logloss of the ensemble and every student,
spread (best − worst student AUC), gap (ensemble − best student AUC) and the mean examination weights.

Example:
    >>> from pathlib import Path
    >>> summary = {"ensemble_auc": 0.8, "ensemble_logloss": 0.4, "best_student": 1, "best_student_auc": 0.79,
    ...            "worst_student": 0, "worst_student_auc": 0.78, "spread": 0.01, "gap": 0.01,
    ...            "lambda_mean": 0.5, "lambda_std": 0.001, "mu_mean": 1.0, "mu_std": 0.0}
    >>> test = {"ensemble": {"auc": 0.8, "logloss": 0.4}, "0": {"auc": 0.78, "logloss": 0.45},
    ...         "1": {"auc": 0.79, "logloss": 0.42}}
    >>> print(format_table({"run_dir": "runs/x", "best_epoch": 3, "epochs_run": 5, "test": test,
    ...                     "summary": summary}))
    run runs/x  (best epoch 3 of 5)
    member        test AUC  test logloss
    ensemble       0.80000       0.40000
    student 0      0.78000       0.45000
    student 1 *    0.79000       0.42000
    spread (best - worst student AUC)   0.01000
    gap (ensemble - best student AUC)   0.01000
    lambda mean (std)                   0.50000 (0.00100)
    mu mean (std)                       1.00000 (0.00000)
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["format_table"]


def _pair(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else f"{mean:.5f} ({std:.5f})"


def format_table(result: Mapping[str, Any]) -> str:
    """Plain-text table of a :meth:`RunResult.to_dict` (``*`` marks the best student)."""
    test, summary = result["test"], result["summary"]
    lines = [f"run {result['run_dir']}  (best epoch {result['best_epoch']} of {result['epochs_run']})",
             f"{'member':<12}{'test AUC':>10}{'test logloss':>14}"]
    students = sorted((k for k in test if k != "ensemble"), key=int)
    for member in ["ensemble", *students]:
        label = "ensemble" if member == "ensemble" else f"student {member}"
        if member != "ensemble" and int(member) == summary["best_student"]:
            label += " *"
        lines.append(f"{label:<12}{test[member]['auc']:>10.5f}{test[member]['logloss']:>14.5f}")
    lines.append(f"{'spread (best - worst student AUC)':<36}{summary['spread']:.5f}")
    lines.append(f"{'gap (ensemble - best student AUC)':<36}{summary['gap']:.5f}")
    lines.append(f"{'lambda mean (std)':<36}{_pair(summary.get('lambda_mean'), summary.get('lambda_std'))}")
    lines.append(f"{'mu mean (std)':<36}{_pair(summary.get('mu_mean'), summary.get('mu_std'))}")
    return "\n".join(lines)
