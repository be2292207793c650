"""Consistency losses between two Bernoulli predictions (docs/method.md §3, Fig. 10; on probabilities, §4.4).

Every function here is elementwise: ``cons(p, t)`` takes the **student** probability ``p = sigma(z_k)`` (the
argument that receives the gradient) and the **target** probability ``t`` (the detached teacher
``sigma(z_t)`` or the detached peer ``sigma(z_l)``) and returns a tensor of their common shape; the strategies
average it over the batch. With ``eps = 1e-7`` and ``p_c = clamp(p, eps, 1 - eps)``:

* ``mse``:   ``(p - t)^2``                                               (the paper's choice, default)
* ``mae``:   ``|p - t|``
* ``huber``: ``0.5 (p - t)^2`` if ``|p - t| <= delta`` else ``delta (|p - t| - 0.5 delta)``, ``delta = 1``
  (torch's default). Since ``|p - t| <= 1`` for probabilities this equals ``0.5 * mse`` exactly.
* ``kl``:    ``KL(t || p) = t log(t / p_c) + (1 - t) log((1 - t) / (1 - p_c))`` — the divergence of the
  student's Bernoulli(p) from the target's Bernoulli(t) (forward KL, as in Hinton KD and DML), with
  ``0 log 0 = 0``. It is >= 0 and zero iff ``p = t``.
* ``bce``:   ``BCE(p; t) = -[t log p + (1 - t) log(1 - p)]``, the cross-entropy of the student with soft
  target ``t`` (``F.binary_cross_entropy``, FuxiCTR's BCE on probabilities; logs clamped at -100).
  ``BCE(p; t) = KL(t || p) + H(t)``, so ``bce`` and ``kl`` have the same gradient in ``p``; ``bce`` is not zero
  at ``p = t``.

How KL and BCE were defined in the paper's Fig. 10 is not documented (docs/method.md §15 question 8); these are the
standard definitions.

Example:
    >>> import torch
    >>> p, t = torch.tensor([0.8]), torch.tensor([0.5])
    >>> [round(CONSISTENCY.get(n)(p, t).item(), 4) for n in ("mse", "mae", "huber")]
    [0.09, 0.3, 0.045]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from collapse_lab.registry import Registry

__all__ = ["CONSISTENCY", "KL_EPS", "mse", "mae", "huber", "kl", "bce"]

CONSISTENCY = Registry("consistency loss")
KL_EPS = 1e-7


@CONSISTENCY.register("mse")
def mse(p: Tensor, target: Tensor) -> Tensor:
    """Squared error ``(p - t)^2``, elementwise."""
    return (p - target).pow(2)


@CONSISTENCY.register("mae")
def mae(p: Tensor, target: Tensor) -> Tensor:
    """Absolute error ``|p - t|``, elementwise."""
    return (p - target).abs()


@CONSISTENCY.register("huber")
def huber(p: Tensor, target: Tensor) -> Tensor:
    """Huber loss with ``delta = 1`` (``F.huber_loss``), elementwise; equals ``0.5 (p - t)^2`` on probabilities."""
    return F.huber_loss(p, target, reduction="none", delta=1.0)


@CONSISTENCY.register("kl")
def kl(p: Tensor, target: Tensor) -> Tensor:
    """``KL(Bernoulli(t) || Bernoulli(p))`` elementwise, ``p`` clamped to ``[eps, 1 - eps]``, ``0 log 0 = 0``.

    Example:
        >>> round(kl(torch.tensor([0.25]), torch.tensor([0.5])).item(), 6)  # 0.5 log 2 + 0.5 log(2/3)
        0.143841
    """
    pc = p.clamp(KL_EPS, 1.0 - KL_EPS)
    q = 1.0 - target
    return torch.xlogy(target, target) - torch.xlogy(target, pc) + torch.xlogy(q, q) - torch.xlogy(q, 1.0 - pc)


@CONSISTENCY.register("bce")
def bce(p: Tensor, target: Tensor) -> Tensor:
    """Soft-target cross-entropy ``-[t log p + (1 - t) log(1 - p)]`` elementwise (``F.binary_cross_entropy``)."""
    return F.binary_cross_entropy(p, target, reduction="none")
