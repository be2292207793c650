"""How much memory a training run needs, estimated from the config before anything is allocated.

A run holds, in float32 (4 bytes per number):

* the parameters P = embedding tables + N students + fusion head, where an MLP student with widths
  H_1..H_L on the F·D-wide embedding input has Σ_j (H_{j-1}·H_j + H_j) Linear weights and biases
  (H_0 = F·D), 2·H_j BatchNorm affine parameters (and 2·H_j running statistics, buffers) per layer, and a
  H_L + 1 logit head; the ``concat`` fusion adds N·H_L + 1;
* a gradient per parameter and Adam's two moment estimates (Kingma & Ba, ICLR 2015, Algorithm 1):
  4·P numbers in all with the weights;
* the activations autograd keeps for a batch of B rows: the (B, F·D) embedding input and, per student and
  hidden layer, the Linear, BatchNorm, ReLU and dropout outputs (4·B·H_j numbers) plus one more of each size
  for the gradient flowing back, i.e. B·(F·D + N·Σ_j 5·H_j) numbers.

:func:`check_training_memory` compares the total with what the machine has — ``MemAvailable`` of
``/proc/meminfo`` (bounded by a cgroup ``memory.max``) on the CPU, ``torch.cuda.mem_get_info`` on a GPU — and
refuses with the numbers, so ``n=100000000`` or ``hidden_units=[1000000000]`` stop at once instead of growing
until the kernel kills the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Tuple

from collapse_lab.errors import UserError

__all__ = ["MemoryEstimate", "estimate_training_memory", "available_memory", "check_training_memory",
           "format_bytes"]

FLOAT_BYTES = 4  # float32 parameters, gradients, optimizer states and activations
COPIES_PER_PARAMETER = 4  # weight, gradient, Adam exp_avg, Adam exp_avg_sq
ACTIVATIONS_PER_UNIT = 5  # Linear, BatchNorm, ReLU and dropout outputs kept for backward + the gradient


@dataclass(frozen=True)
class MemoryEstimate:
    """Parameter count and bytes of one training run (see the module docstring for the formulas)."""

    parameters: int  # trainable numbers
    buffers: int  # BatchNorm running statistics
    activations: int  # numbers kept for one batch's backward pass

    @property
    def state_bytes(self) -> int:
        """Weights, gradients and Adam moments (plus buffers)."""
        return FLOAT_BYTES * (COPIES_PER_PARAMETER * self.parameters + self.buffers)

    @property
    def activation_bytes(self) -> int:
        return FLOAT_BYTES * self.activations

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.activation_bytes


def format_bytes(n: float) -> str:
    """Human-readable binary size.

    Example:
        >>> format_bytes(512), format_bytes(3 * 2**30), format_bytes(5 * 2**50)
        ('512 B', '3.0 GiB', '5.0 PiB')
    """
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{int(value)} B" if i == 0 else f"{value:.1f} {units[i]}"


def estimate_training_memory(feature_map: Any, num_students: int, hidden_units: Any, embedding_dim: int,
                             batch_size: int, batch_norm: bool = True, fusion: str = "mean") -> MemoryEstimate:
    """Parameters, buffers and activations of an MLP-student ensemble (exact integers, no allocation).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> fmap = NS(fields=[NS(type="categorical", vocab_size=10), NS(type="numeric", vocab_size=1)])
        >>> e = estimate_training_memory(fmap, 2, [3], 4, batch_size=5, batch_norm=False)
        >>> e.parameters  # 11·4 embedding + 2·((8·3 + 3) + (3 + 1))
        106
        >>> e.activations  # 5·(8 + 2·5·3)
        190
    """
    d = int(embedding_dim)
    embedding = sum((1 if f.type == "numeric" else int(f.vocab_size)) * d for f in feature_map.fields)
    widths = [len(feature_map.fields) * d] + [int(h) for h in hidden_units]
    student = sum(a * b + b + (2 * b if batch_norm else 0) for a, b in zip(widths[:-1], widths[1:], strict=True))
    student += widths[-1] + 1  # logit head
    n = int(num_students)
    head = n * widths[-1] + 1 if fusion == "concat" else 0
    buffers = n * sum(2 * h for h in widths[1:]) if batch_norm else 0
    activations = int(batch_size) * (widths[0] + n * ACTIVATIONS_PER_UNIT * sum(widths[1:]))
    return MemoryEstimate(embedding + n * student + head, buffers, activations)


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Room left under a cgroup v2 ``memory.max`` (None when unlimited or not readable)."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def available_memory(device: str = "cpu") -> Tuple[int | None, str]:
    """``(bytes available, where that number comes from)``; ``None`` when it cannot be determined."""
    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free memory of {device} (torch.cuda.mem_get_info)"
    found = [(v, w) for v, w in ((_meminfo_available(), "MemAvailable in /proc/meminfo"),
                                 (_cgroup_available(), "the cgroup memory.max")) if v is not None]
    return min(found) if found else (None, "unknown")


def check_training_memory(feature_map: Any, cfg: Any, device: str = "cpu") -> MemoryEstimate:
    """Estimate the run's memory and raise a one-line :class:`UserError` when it exceeds what ``device`` has.

    Args:
        feature_map: the dataset's :class:`~collapse_lab.data.feature_map.FeatureMap`.
        cfg: the resolved :class:`~collapse_lab.config.TrainConfig`.
        device: ``cpu`` or ``cuda[:i]``.
    """
    # the capacity control (width_match_n = K) widens each student to the parameters of K students: counted as K
    # students, the parameters agree within its 2% tolerance and the activations are an upper bound
    match = getattr(cfg, "width_match_n", None) or 1
    est = estimate_training_memory(feature_map, cfg.n * match, cfg.hidden_units, cfg.embedding_dim, cfg.batch_size,
                                   cfg.batch_norm, cfg.fusion)
    available, where = available_memory(device)
    if available is not None and est.total_bytes > available:
        matched = f", width_match_n={match}" if match > 1 else ""
        raise UserError(
            f"model too large for this machine: n={cfg.n}{matched}, hidden_units={list(cfg.hidden_units)}, "
            f"embedding_dim={cfg.embedding_dim} give {est.parameters:,} parameters "
            f"({format_bytes(est.state_bytes)} for weights, gradients and Adam states) plus "
            f"{format_bytes(est.activation_bytes)} of activations for batch_size={cfg.batch_size}: "
            f"{format_bytes(est.total_bytes)} needed, {format_bytes(available)} available ({where}); "
            "reduce n, hidden_units, embedding_dim or batch_size")
    return est
