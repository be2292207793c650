"""The analyses/ notebooks: outputs stripped, a papermill parameters cell, only library calls, and they run
(papermill, as nbmake would) against a real tiny sweep built by the tests."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from sweep_fixtures import build_tiny_sweep

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"
NOTEBOOKS = sorted(ANALYSES.glob("*.ipynb"))
NAMES = ["collapse_spectra", "degradation_and_variance", "exam_weights", "knowledge_transfer"]
FORBIDDEN = (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.If, ast.Lambda, ast.ListComp, ast.DictComp,
             ast.With, ast.Try)


def test_the_four_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == NAMES


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_parameterised_and_logic_free(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "outputs must be stripped"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "sweep_dir = " in params[0].source
    for cell in code:
        source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        tree = ast.parse(source)
        assert not [n for n in ast.walk(tree) if isinstance(n, FORBIDDEN)], f"logic in:\n{cell.source}"
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert module.startswith("collapse_lab"), f"only library imports: {module}"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_tiny_sweep(path, tmp_path, tmp_path_factory):
    import papermill

    tiny = build_tiny_sweep(tmp_path_factory.getbasetemp() / "tiny-sweep")
    assert tiny["exit_code"] == 0, tiny["output"]
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters={"sweep_dir": str(tiny["sweep"])},
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                               execution_timeout=300)
    nb = nbformat.read(out, as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "every notebook draws at least one figure"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
