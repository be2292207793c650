"""Packaging: a valid CITATION.cff, a light ``import collapse_lab``, a working ``python -m collapse_lab``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_citation_cff_is_valid():
    exe = Path(sys.executable).with_name("cffconvert")
    exe = str(exe) if exe.exists() else shutil.which("cffconvert")
    assert exe, "cffconvert is part of the dev extra; install with pip install -e '.[dev]'"
    proc = _run(exe, "--validate", "-i", str(ROOT / "CITATION.cff"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in (proc.stdout + proc.stderr).lower()


def test_import_is_light():
    code = ("import collapse_lab, sys; heavy = [m for m in ('matplotlib', 'sklearn', 'ray') if m in sys.modules]; "
            "assert not heavy, heavy; print(collapse_lab.__version__)")
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_python_dash_m_help_lists_the_data_command():
    proc = _run(sys.executable, "-m", "collapse_lab", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "data" in proc.stdout
    proc = _run(sys.executable, "-m", "collapse_lab", "data", "--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("list", "fetch", "prepare", "info"):
        assert command in proc.stdout
