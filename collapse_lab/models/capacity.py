"""Capacity control: the hidden widths that give one student the parameter count of an ensemble of K students.

An ensemble of K students has more parameters than the single model, so "the ensemble gains" and "more
parameters gain" are confounded (a control arXiv 2411.16122 does not run). The control trains one student
whose hidden widths are scaled until the whole model has as many trainable parameters as the K-student
ensemble, counted exactly as :func:`~collapse_lab.models.build_ensemble` builds them: the shared embedding
tables, every student (Linear, BatchNorm affine, head) and the fusion head. For the MLP student with input
width ``h_{-1} = F*D``, hidden widths ``h_0 .. h_{L-1}`` and BatchNorm,

    P_student(h) = sum_j (h_{j-1} + 1 + 2) h_j + (h_{L-1} + 1),

so for uniform widths ``P`` is a quadratic ``(L-1) w^2 + (F*D + 3L + 1) w + 1`` in ``w`` (``L >= 2``). The
candidate widths are ``h_j(W) = max(1, round(h_j * W / max_j h_j))`` for an integer ``W`` (the widest layer),
which keeps the shape of ``hidden_units``. ``P`` is non-decreasing in ``W``, so a bisection finds the smallest
``W`` with ``P >= target``; ``W`` or ``W - 1``, whichever is closer (the smaller on a tie), is the answer.
Every count builds the real model on PyTorch's ``meta`` device: exact, with no memory and no arithmetic.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

import torch

from collapse_lab.data.feature_map import FeatureMap
from collapse_lab.errors import UserError

__all__ = ["CAPACITY_TOLERANCE", "check_capacity_students", "parameter_count", "scaled_widths", "match_capacity"]

#: largest relative difference |P - target| / target accepted between the control and the ensemble
CAPACITY_TOLERANCE = 0.02


def parameter_count(feature_map: FeatureMap, num_students: int, hidden_units: Sequence[int],
                    **build_kwargs: Any) -> int:
    """Trainable parameters of ``build_ensemble(feature_map, num_students, hidden_units=..., **build_kwargs)``
    (embedding + students + fusion), counted on the ``meta`` device."""
    from collapse_lab.models.ensemble import build_ensemble

    # ``students`` names the members of the n=1 control; only mlp students are scaled, so ``student`` says it all
    kwargs = {k: v for k, v in build_kwargs.items() if k not in ("form", "seed", "students")}
    with torch.device("meta"):
        model = build_ensemble(feature_map, num_students=num_students, hidden_units=tuple(hidden_units),
                               form="loop", **kwargs)
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def check_capacity_students(student: str = "mlp", students: Sequence[str] | None = None,
                            student_args: Mapping[str, Any] | None = None) -> None:
    """The capacity control scales the widths of ``mlp`` students (the closed form above): any other student, or
    an ``mlp`` block that sets its own ``hidden_units`` (the scaled widths would not reach it), is a UserError."""
    names = list(students) if students is not None else [student]
    others = sorted(set(n for n in names if n != "mlp"))
    if others:
        raise UserError(f"config key 'width_match_n': the capacity control scales mlp students only, not "
                        f"{', '.join(others)}; set width_match_n=null")
    if "hidden_units" in dict((student_args or {}).get("mlp") or {}):
        raise UserError("config key 'width_match_n': set the widths to scale with the top-level hidden_units, "
                        "not student_args.mlp.hidden_units")


def scaled_widths(hidden_units: Sequence[int], widest: int) -> List[int]:
    """``hidden_units`` scaled so that its widest layer is ``widest`` (rounded, at least 1).

    Example:
        >>> scaled_widths([400, 400, 400], 1000), scaled_widths([400, 200, 100], 1000)
        ([1000, 1000, 1000], [1000, 500, 250])
    """
    top = max(hidden_units)
    return [max(1, int(round(h * widest / top))) for h in hidden_units]


def match_capacity(feature_map: FeatureMap, match_n: int, hidden_units: Sequence[int],
                   **build_kwargs: Any) -> Dict[str, Any]:
    """The widths of one student with the parameter count of ``match_n`` students of width ``hidden_units``.

    Args:
        feature_map: the dataset's fields (they fix the embedding and the student input width).
        match_n: K, the ensemble size to match.
        hidden_units: the widths of each of the K students.
        build_kwargs: the other :func:`~collapse_lab.models.build_ensemble` arguments (student, embedding_dim,
            batch_norm, fusion, ...), the same for both models.

    Returns:
        ``{"match_n", "base_hidden_units", "hidden_units", "target_parameters", "parameters",
        "relative_difference"}`` with ``relative_difference = parameters / target_parameters - 1``.

    Raises:
        UserError: students other than ``mlp`` (only the MLP's widths are scaled), no hidden layer to widen, or no
            width within :data:`CAPACITY_TOLERANCE` of the target.

    Example:
        >>> from collapse_lab.data.feature_map import FeatureMap, FieldInfo
        >>> fm = FeatureMap("toy", [FieldInfo("a", "categorical", 0, 1, vocab_size=10, padding_idx=0)])
        >>> match_capacity(fm, 4, [8, 8], embedding_dim=4)["hidden_units"]
        [20, 20]
    """
    check_capacity_students(build_kwargs.get("student", "mlp"), build_kwargs.get("students"),
                            build_kwargs.get("student_args"))
    base = [int(h) for h in hidden_units]
    if not base:
        raise UserError("width_match_n: hidden_units is empty, so there is no width to scale")
    if isinstance(match_n, bool) or int(match_n) != match_n or match_n < 1:
        raise UserError(f"width_match_n must be an integer >= 1, got {match_n!r}")
    target = parameter_count(feature_map, int(match_n), base, **build_kwargs)

    def count(widest: int) -> int:
        return parameter_count(feature_map, 1, scaled_widths(base, widest), **build_kwargs)

    lo, hi = 1, max(base)
    while count(hi) < target:
        lo, hi = hi, hi * 2
    while lo < hi:  # smallest widest width whose count reaches the target
        mid = (lo + hi) // 2
        if count(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min((w for w in (hi - 1, hi) if w >= 1), key=lambda w: (abs(count(w) - target), w))
    params = count(best)
    result = {"match_n": int(match_n), "base_hidden_units": base, "hidden_units": scaled_widths(base, best),
              "target_parameters": target, "parameters": params, "relative_difference": params / target - 1.0}
    if abs(result["relative_difference"]) > CAPACITY_TOLERANCE:
        raise UserError(f"width_match_n={match_n}: the closest widths {result['hidden_units']} give {params} "
                        f"parameters, {result['relative_difference']:+.1%} from the {target} of {match_n} "
                        f"students (tolerance {CAPACITY_TOLERANCE:.0%}); use wider hidden_units")
    return result
