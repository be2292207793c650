"""Where processed datasets live and how names resolve to directories.

A dataset is referred to by a directory (one holding ``feature_map.json``) or by a name. Names resolve to
``<data_root>/<name>/`` where ``data_root`` is ``$COLLAPSE_LAB_DATA`` or ``./data``. Downloads are cached under
``<data_root>/.cache/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from collapse_lab.errors import UserError

__all__ = ["data_root", "cache_dir", "resolve_processed"]


def data_root(root: Union[str, Path] | None = None) -> Path:
    """The directory holding processed datasets (``root``, else ``$COLLAPSE_LAB_DATA``, else ``./data``)."""
    return Path(root or os.environ.get("COLLAPSE_LAB_DATA") or "data")


def cache_dir(root: Union[str, Path] | None = None) -> Path:
    """The download cache (``<data_root>/.cache``)."""
    return data_root(root) / ".cache"


def resolve_processed(name_or_dir: Union[str, Path], root: Union[str, Path] | None = None) -> Path:
    """The processed-dataset directory for a name or a path; a clear error says how to prepare it."""
    candidate = Path(name_or_dir)
    if (candidate / "feature_map.json").exists():
        return candidate
    by_name = data_root(root) / str(name_or_dir)
    if (by_name / "feature_map.json").exists():
        return by_name
    raise UserError(f"dataset {str(name_or_dir)!r} is not prepared (looked in {candidate} and {by_name}); "
                    f"run `collapse-lab data prepare {name_or_dir}` first")
