"""Safe path components: user-given names (dataset ids, sweep names) never escape the directory they name into.

A name becomes one path component under a root (``<data_root>/<dataset_id>``, ``sweeps/<name>``), and an
``--overwrite`` may delete what it points to, so a name like ``../victim``, ``/home/me`` or ``a/b`` must be
refused before it is joined. :func:`check_name` accepts one portable file-name component (POSIX "portable
filename character set", IEEE Std 1003.1 §3.282, plus a 128-character cap) that is not ``.``/``..``-like;
:func:`inside` resolves a joined path (symlinks included) and checks it is still under its root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Union

from collapse_lab.errors import UserError

__all__ = ["SAFE_NAME", "check_name", "inside", "child"]

#: one component: starts with a letter or digit (so never ``.``, ``..`` or a hidden/temporary ``.x`` name),
#: then letters, digits, ``.``, ``_``, ``-``; at most 128 characters
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_name(name: object, what: str, where: str = "") -> str:
    """Return ``name`` if it is a safe single path component, else raise a one-line UserError.

    Args:
        name: the user-given value.
        what: what it names, for the message (``"dataset_id"``, ``"sweep name"``).
        where: the file (and key) it came from, prefixed to the message.

    Example:
        >>> check_name("criteo_x1-v2", "dataset_id")
        'criteo_x1-v2'
        >>> check_name("../victim", "dataset_id", "spec.yaml")
        Traceback (most recent call last):
        ...
        collapse_lab.errors.UserError: spec.yaml: dataset_id '../victim' is not a safe name: expected letters, \
digits, '.', '_' or '-' (starting with a letter or digit, at most 128 characters, no '/' and no '..')
    """
    text = name if isinstance(name, str) else None
    if text is None or not SAFE_NAME.fullmatch(text) or ".." in text:
        prefix = f"{where}: " if where else ""
        raise UserError(f"{prefix}{what} {name!r} is not a safe name: expected letters, digits, '.', '_' or '-' "
                        "(starting with a letter or digit, at most 128 characters, no '/' and no '..')")
    return text


def inside(root: Union[str, os.PathLike], path: Union[str, os.PathLike], what: str = "path") -> Path:
    """``path`` if it resolves (symlinks followed) to ``root`` or below, else a UserError naming both.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> inside(root, root / "a") == root / "a"
        True
        >>> inside(root, root / "a" / ".." / ".." / "x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        collapse_lab.errors.UserError: ...: path resolves outside ... (to ...; expected a path inside it)
    """
    real_root = Path(root).resolve()
    real = Path(path).resolve()
    if not real.is_relative_to(real_root):
        raise UserError(f"{path}: {what} resolves outside {root} (to {real}; expected a path inside it)")
    return Path(path)


def child(root: Union[str, os.PathLike], name: object, what: str, where: str = "") -> Path:
    """``root / name`` after :func:`check_name` and :func:`inside` (the one way to turn a name into a path)."""
    return inside(root, Path(root) / check_name(name, what, where), what)
