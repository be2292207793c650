"""Packaging: a valid CITATION.cff, a light ``import collapse_lab``, a working ``python -m collapse_lab``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT, timeout=120)


def _cff_validator():
    """A Draft-7 validator of the Citation File Format 1.2.0 schema (tests/data/, CC-BY-4.0, see its README)."""
    import jsonschema

    schema = json.loads((ROOT / "tests" / "data" / "cff-1.2.0.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_citation_cff_is_valid():
    # cffconvert --validate did this before, but it pins jsonschema<4, which jupyterlab cannot live beside
    doc = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _cff_validator().iter_errors(doc)]
    assert not errors, errors
    assert doc["cff-version"] == "1.2.0"


@pytest.mark.parametrize("break_it", [
    lambda d: d.pop("authors"),                                  # required key
    lambda d: d.update({"date-released": "29 Nov 2026"}),        # not an ISO date
    lambda d: d.update({"colour": "blue"}),                      # unknown top-level key
])
def test_citation_schema_check_catches_broken_files(break_it):
    doc = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    break_it(doc)
    assert list(_cff_validator().iter_errors(doc))


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
