"""``compile: true``: the students' forward compiled with ``torch.compile`` (docs/performance.md §6).

Only the students' ``forward`` functions are compiled (each student module in the loop form, the stacked module in
the batched form): there the eager chain GEMM -> bias -> BatchNorm -> ReLU -> dropout runs as separate kernels over
(B, h) activations, and a compiler fuses the elementwise passes into the GEMM epilogues. The embedding lookup,
fusion, losses and Adam stay eager, and so do the precision hooks (:mod:`collapse_lab.training.precision`): they
wrap the compiled forward, which sees the autocast state they set like any other global state. Assigning the
compiled function to the instance's ``forward`` leaves the parameters, their names and the checkpoints unchanged.

Each compiled forward is specialised to the global state it runs under (training with gradients, evaluation
under ``no_grad``, autocast on or off) and to the batch shape (a last partial batch): a handful of variants per run,
more when several runs share a process, so :func:`compile_students` raises dynamo's recompile limit to
:data:`RECOMPILE_LIMIT` (beyond the limit torch silently runs eager). Compiled runs are reproducible but not
bit-identical to eager ones: inductor draws the dropout masks' random bits with its own generator and fuses the
floating-point passes differently.

Where compilation is unavailable (torch without ``torch.compile``, no Triton for CUDA, no C++ compiler for the CPU
backend) :func:`compile_students` leaves the model eager and returns a one-line reason that the trainer logs.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any

from collapse_lab.training.precision import student_modules

__all__ = ["compile_support", "compile_students", "RECOMPILE_LIMIT"]

#: dynamo's recompile limit while collapse-lab compiles (torch's default is 8)
RECOMPILE_LIMIT = 64


def compile_support(device: Any = "cpu") -> str | None:
    """None when ``torch.compile`` can compile for ``device``, else why not (one phrase)."""
    import torch

    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python version"
    except Exception as exc:  # noqa: BLE001 - any import problem means: no compiler here
        return f"torch._dynamo is unusable ({type(exc).__name__})"
    if torch.device(device).type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed"
        return None
    compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return "no C++ compiler for the CPU backend"
    return None


def compile_students(model: Any, device: Any = "cpu") -> str | None:
    """Compile every student's forward of ``model`` in place; None on success, else the fallback line."""
    import torch

    why = compile_support(device)
    if why is not None:
        return f"compile=true requested but {why}: training without torch.compile"
    import torch._dynamo.config as dynamo_config

    for key in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if isinstance(getattr(dynamo_config, key, None), int):
            setattr(dynamo_config, key, max(getattr(dynamo_config, key), RECOMPILE_LIMIT))
            break
    for module in student_modules(model):
        module.forward = torch.compile(module.forward, dynamic=False)
    return None
