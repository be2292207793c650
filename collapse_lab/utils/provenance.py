"""What produced a result: package/library versions and the git commit (recorded in every manifest)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from collapse_lab.__about__ import __version__

__all__ = ["git_info", "environment_info"]


def git_info(cwd: Optional[Path] = None) -> Dict[str, Any]:
    """Commit hash and dirty flag of the repository holding the package (``None`` outside git)."""
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment_info() -> Dict[str, Any]:
    """Versions of Python, the package and the numerical libraries, plus the host platform."""
    import numpy

    info: Dict[str, Any] = {
        "collapse_lab": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "argv": list(sys.argv),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a core dependency
        info["torch"] = None
    return info
