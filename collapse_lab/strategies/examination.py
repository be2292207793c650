"""The examination mechanism (EM, paper Eqs. 8-9): per-batch loss weights from the students' exam scores.

    S_k      = 1 - (1/B) sum_i |y_i - p_{k,i}|                       exam score (larger = better)
    lambda_k = softmin_k(S)   = exp(-S_k) / sum_j exp(-S_j)         tailored teaching: weaker students get more
    mu_{k,l} = softmax_{l != k}(S_l - S_k)                           selective learning: learn from better peers
             = exp(S_l - S_k) / sum_{l' != k} exp(S_{l'} - S_k),     mu_{k,k} = 0

The authors' code computes S from the live predictions, so gradients flow through lambda and mu (docs/method.md §4
item 5); ``detach=True`` stops them. With N = 1: lambda = [1] and mu = [[0]] (no peers).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["exam_scores", "tailored_weights", "selective_weights", "examination"]


def exam_scores(probs: Tensor, labels: Tensor) -> Tensor:
    """``S_k = 1 - mean_i |y_i - p_{k,i}|``: probabilities ``(B, N)`` and labels ``(B,)`` -> ``(N,)``.

    Example:
        >>> exam_scores(torch.tensor([[0.9, 0.6], [0.2, 0.5]]), torch.tensor([1.0, 0.0])).tolist()
        [0.8500000238418579, 0.550000011920929]
    """
    return 1.0 - (labels.unsqueeze(1) - probs).abs().mean(dim=0)  # (N,)


def tailored_weights(scores: Tensor) -> Tensor:
    """``lambda = softmin(S)`` over the N students, ``(N,)``; sums to 1.

    Example:
        >>> tailored_weights(torch.tensor([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """
    return torch.softmax(-scores, dim=0)


def selective_weights(scores: Tensor) -> Tensor:
    """``mu_{k,l} = softmax_{l != k}(S_l - S_k)``, ``(N, N)`` with a zero diagonal; each row sums to 1 (N > 1).

    Example:
        >>> selective_weights(torch.tensor([0.3, 0.9])).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
    """
    n = scores.shape[0]
    if n == 1:
        return torch.zeros(1, 1, dtype=scores.dtype, device=scores.device)
    diff = scores.unsqueeze(0) - scores.unsqueeze(1)  # (N, N): [k, l] = S_l - S_k
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)
    return torch.softmax(diff.masked_fill(eye, float("-inf")), dim=1)  # exp(-inf) = 0 on the diagonal


def examination(probs: Tensor, labels: Tensor, detach: bool = False) -> Tuple[Tensor, Tensor]:
    """``(lambda (N,), mu (N, N))`` from student probabilities ``(B, N)`` and labels ``(B,)``."""
    scores = exam_scores(probs.detach() if detach else probs, labels)
    return tailored_weights(scores), selective_weights(scores)
