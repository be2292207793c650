"""Shared pieces of the property-based input tests (tests/test_fuzz_*.py): in-process CLI calls, byte mutations
and the checks every failure must pass (issue 12: one ``error:`` line naming the file, exit code 2, nothing left
behind)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import List, Sequence, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from collapse_lab.cli import main

__all__ = ["FUZZ", "run_cli", "mutated", "assert_clean_failure", "leftover_temp_files"]

#: >= 200 examples per run (issue 12), no deadline (the first call imports torch), tmp dirs made inside
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


def run_cli(argv: Sequence[str]) -> Tuple[int, str, str]:
    """``collapse-lab ARGV`` in this process: ``(exit code, stdout, stderr)``; any other exception propagates.

    Python's default unraisable-exception hook is restored for the call (pytest replaces it), so an exception
    ignored inside a callback ("Exception ignored in ...", printed by the real CLI) shows up in stderr.
    """
    out, err = io.StringIO(), io.StringIO()
    code = 0
    hook, sys.unraisablehook = sys.unraisablehook, sys.__unraisablehook__
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.unraisablehook = hook
    return code, out.getvalue(), err.getvalue()


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` unchanged, truncated, with bytes flipped/inserted/overwritten, or replaced by random bytes."""
    kind = draw(st.sampled_from(["keep", "truncate", "flip", "insert", "overwrite", "random", "append"]))
    data = bytearray(valid)
    n = len(data)
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, max(n - 1, 0)))])
    if kind == "flip" and n:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, n - 1))
            data[i] ^= draw(st.integers(1, 255))
        return bytes(data)
    if kind == "insert":
        i = draw(st.integers(0, n))
        return bytes(data[:i]) + draw(st.binary(min_size=1, max_size=64)) + bytes(data[i:])
    if kind == "overwrite" and n:
        i = draw(st.integers(0, n - 1))
        junk = draw(st.binary(min_size=1, max_size=64))
        return bytes(data[:i]) + junk + bytes(data[i + len(junk):])
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "append":
        return bytes(data) + draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def leftover_temp_files(root: Path) -> List[Path]:
    """Temporary files or directories (``.tmp`` / ``.old`` names of the atomic writers) under ``root``."""
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".old")) or ".tmp" in p.name]


def assert_clean_failure(code: int, err: str, names: Sequence[object]) -> None:
    """Exit code 2 and exactly one ``error:`` line, free of control characters, naming one of ``names``."""
    assert code == 2, (code, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "\x1b" not in err and "\r" not in err, err
    assert any(str(n) in err for n in names), (err, names)
