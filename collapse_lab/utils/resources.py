"""Where the bundled configuration presets live.

The presets (``configs/data/*.yaml`` dataset specs, ``configs/sweeps/*.yaml`` grids, ``configs/exp/*.yaml``
training configs) are kept in ``configs/`` at the repository root, next to the package, so that a source
checkout edits them in place. A wheel carries a copy as ``collapse_lab/_configs/`` (hatch ``force-include`` in
``pyproject.toml``); :func:`config_dir` uses that copy when it exists, else the checkout's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

__all__ = ["config_dir", "config_names"]

_PACKAGE = Path(__file__).resolve().parents[1]


def config_dir(kind: str) -> Path:
    """The wheel's ``_configs/<kind>`` when the package was installed from one, else ``configs/<kind>`` of the
    source checkout holding the package (never a ``configs/`` folder some other distribution put next to an
    installed package).

    Example:
        >>> config_dir("sweeps").name
        'sweeps'
    """
    bundled = _PACKAGE / "_configs" / kind
    if (_PACKAGE / "_configs").is_dir():
        return bundled
    return _PACKAGE.parent / "configs" / kind


def config_names(kind: str) -> List[str]:
    """Sorted stems of the ``*.yaml`` files of :func:`config_dir` (empty when the folder is missing)."""
    folder = config_dir(kind)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
