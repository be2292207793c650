"""Mixed precision of the students: ``precision=bf16`` runs each student's forward under bf16 autocast.

What runs in which dtype (docs/performance.md §3, "bf16 autocast")::

    h   = embedding(ids)                       fp32   (lookup, pooling; outside autocast)
    z_k = Student_k(h)                         bf16 GEMMs (Linear/addmm/bmm under torch.autocast), BN/ReLU/dropout
                                                       on the bf16 activations; z_k cast back to fp32 on exit
    z_t = Fusion(z_1..z_N), sigmoid, BCE,      fp32   (after the student: the logits are ``.float()``)
    teacher, KD/DML targets, embedding L2

The weights stay fp32 ("master weights"): autocast casts a bf16 copy for each GEMM, the gradients flow back into
the fp32 parameters and Adam updates fp32. Only the students' forward is wrapped, by a forward pre-hook that
enters ``torch.autocast(device_type, dtype=torch.bfloat16)`` and a forward hook (``always_call``: also on an
exception) that leaves it and casts the returned tensors to float32, so evaluation, the probe and a data- or
ensemble-parallel step all run under the same precision as training without the ensemble knowing about it.

``bf16`` needs bf16 arithmetic on the device: on CPU the AVX512-BF16 or AMX-BF16 instructions (oneDNN's
``torch.ops.mkldnn._is_mkldnn_bf16_supported``; ``/proc/cpuinfo`` flags ``avx512_bf16`` / ``amx_bf16``), on CUDA
``torch.cuda.is_bf16_supported()``. Where they are missing bf16 would be emulated and slower than fp32, so
:func:`resolve_precision` returns ``fp32`` and a one-line reason that the trainer logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Tuple

__all__ = ["PRECISIONS", "bf16_support", "resolve_precision", "install_precision", "student_modules"]

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16")


def _cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def bf16_support(device: Any = "cpu") -> Tuple[bool, str]:
    """Whether ``device`` has bf16 units, and what says so (or why not)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return ok, f"cuda bf16 {'supported' if ok else 'not supported'} on {torch.cuda.get_device_name(dev)}" \
            if torch.cuda.is_available() else "no CUDA device"
    if dev.type != "cpu":
        return False, f"bf16 autocast is not wired for device type {dev.type!r}"
    flags = _cpu_flags() & {"avx512_bf16", "amx_bf16"}
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    capability = torch.backends.cpu.get_cpu_capability()
    if flags or onednn:
        return True, f"cpu {capability}, {'+'.join(sorted(flags)) or 'oneDNN bf16'}"
    return False, f"cpu {capability} has no avx512_bf16/amx_bf16 units"


def resolve_precision(precision: str, device: Any = "cpu") -> Tuple[str, str | None]:
    """``(effective precision, fallback line or None)``; ``bf16`` without bf16 units -> ``fp32``."""
    if precision == "fp32":
        return "fp32", None
    ok, why = bf16_support(device)
    if ok:
        return "bf16", None
    return "fp32", f"precision=bf16 requested but {why}: training in fp32"


def student_modules(model: Any) -> List[Any]:
    """The modules that hold the students of a :class:`~collapse_lab.models.ensemble.CTREnsemble` (either form)."""
    if getattr(model, "students", None) is not None:
        return list(model.students)
    return [model.stack]


def _to_float(out: Any) -> Any:
    import torch

    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


def install_precision(model: Any, precision: str, device: Any = "cpu",
                      modules: Sequence[Any] | None = None) -> List[Any]:
    """Wrap every student's forward of ``model`` in bf16 autocast (no-op for ``fp32``); returns the hook handles.

    Args:
        model: the ensemble (loop or batched form).
        precision: the *effective* precision (see :func:`resolve_precision`).
        device: where the model runs (selects ``torch.autocast``'s device type).
        modules: wrap these modules instead of ``model``'s students (a baseline's own students, bench/).
    """
    import torch

    if precision == "fp32":
        return []
    device_type = torch.device(device).type
    handles = []
    for module in student_modules(model) if modules is None else modules:
        contexts: List[Any] = []

        def enter(mod: Any, args: Any, contexts: List[Any] = contexts) -> None:
            ctx = torch.autocast(device_type, dtype=torch.bfloat16)
            ctx.__enter__()
            contexts.append(ctx)

        def leave(mod: Any, args: Any, out: Any, contexts: List[Any] = contexts) -> Any:
            if contexts:
                contexts.pop().__exit__(None, None, None)
            return _to_float(out)

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    return handles
