"""The layering of docs/architecture.md §2, checked on the source: every ``import`` (module level and inside
functions, parsed with ``ast``) of every module of the package goes only to the layers the module's layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parent.parent / "collapse_lab"

#: layer -> the collapse_lab layers it must never import (docs/architecture.md §2); a layer is the first component
#: below ``collapse_lab`` (a top-level module's stem, or a subpackage)
TRAINING_SIDE = {"models", "strategies", "training", "parallel", "tracking"}
ORCHESTRATION = {"sweep", "commands", "cli", "__main__"}
#: layers that may import nothing of the package but the listed ones
ONLY: Dict[str, Set[str]] = {"errors": set(), "__about__": set(), "registry": {"errors"}}
FORBIDDEN: Dict[str, Set[str]] = {
    "recipes": TRAINING_SIDE | ORCHESTRATION | {"config", "io", "data", "spectral", "results", "plotting"},
    "utils": TRAINING_SIDE | ORCHESTRATION | {"config", "io", "data", "spectral", "results", "plotting"},
    "io": TRAINING_SIDE | ORCHESTRATION | {"config", "data", "spectral", "results", "plotting", "recipes"},
    "data": TRAINING_SIDE | ORCHESTRATION | {"config", "spectral", "results", "plotting"},
    "spectral": TRAINING_SIDE | ORCHESTRATION | {"config", "data", "results", "plotting"},
    "results": TRAINING_SIDE | ORCHESTRATION | {"config", "data", "plotting"},
    "plotting": TRAINING_SIDE | ORCHESTRATION | {"config", "data"},
    "models": {"training", "strategies", "parallel", "tracking", "spectral", "results", "plotting"} | ORCHESTRATION,
    "strategies": {"training", "models", "parallel", "spectral", "results", "plotting"} | ORCHESTRATION,
    "tracking": {"training", "models", "strategies", "parallel", "spectral", "results", "plotting"} | ORCHESTRATION,
    "parallel": {"training", "spectral", "results", "plotting"} | ORCHESTRATION,  # training builds on parallel
    "training": {"results", "plotting"} | ORCHESTRATION,
    "sweep": {"commands", "cli", "__main__"},
}
#: (module, imported module) pairs that break the rules as the code stands, each with the reason it is tolerated;
#: the test fails when one disappears, so the list cannot go stale
KNOWN: Dict[Tuple[str, str], str] = {}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str) -> List[Tuple[int, str]]:
    """``(line, absolute module)`` of every collapse_lab import in the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: List[Tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from collapse_lab import spectral`` imports the subpackage ``spectral``
            if target == "collapse_lab" or (node.level and not node.module):
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "collapse_lab" or name.startswith("collapse_lab.")]


def _violations() -> Tuple[List[str], Set[Tuple[str, str]]]:
    bad: List[str] = []
    tolerated: Set[Tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        own = _layer(module)
        for line, target in _imports(path, module):
            layer = _layer(target)
            if not layer or layer == own:
                continue
            if (own in ONLY and layer not in ONLY[own]) or layer in FORBIDDEN.get(own, set()):
                if (module, target) in KNOWN:
                    tolerated.add((module, target))
                    continue
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} ({_layer(module)}) imports {target} "
                           f"({layer})")
    return bad, tolerated


def test_imports_follow_the_layering():
    bad, tolerated = _violations()
    assert not bad, "imports that break the layering of docs/architecture.md §2:\n" + "\n".join(bad)
    stale = sorted(set(KNOWN) - tolerated)
    assert not stale, f"listed as known but no longer imported (remove from KNOWN): {stale}"


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\n"
                   "def f():\n"
                   "    from collapse_lab.training.api import train\n"
                   "    from . import sibling\n"
                   "    from ..models import ensemble\n"
                   "    from collapse_lab import plotting\n")
    found = _imports(src, "collapse_lab.spectral.m")
    assert found == [(3, "collapse_lab.training.api"), (4, "collapse_lab.spectral.sibling"),
                     (5, "collapse_lab.models"), (6, "collapse_lab.plotting")]
