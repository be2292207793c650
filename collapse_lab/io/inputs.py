"""Checks on input files before they are opened, with one-line reasons a user can act on.

``os.stat`` tells apart what ``Path.exists()`` lumps together as "missing": a dangling link, a symlink loop
(``ELOOP``), a permission problem, a directory, or a device/pipe such as ``/dev/zero`` that would be read forever.
:func:`printable` escapes control characters and terminal escape sequences in text taken from input files, so
that a message never carries raw bytes of a hostile file to the terminal.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Union

from collapse_lab.errors import UserError

__all__ = ["check_regular_file", "read_text_file", "printable"]


def printable(text: object) -> str:
    """``text`` with every non-printable character escaped as in ``repr`` (``\\x1b``, ``\\r``, ``\\u202e``).

    Example:
        >>> printable("C\\x1b[31mX\\r") == "C\\\\x1b[31mX\\\\r"
        True
        >>> printable("naïve label")
        'naïve label'
    """
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def check_regular_file(path: Union[str, os.PathLike], what: str = "file", missing: str = "no such file") -> Path:
    """Raise a :class:`UserError` unless ``path`` is a readable regular file; return it as a :class:`Path`.

    Args:
        path: the file.
        what: what the file should be, for messages (``"CSV file"``, ``"checkpoint"``...).
        missing: the message for a path that does not exist.

    Raises:
        UserError: ``<path>: no such file``, ``symlink loop``, ``is a directory``, ``not a regular file``
            (a device, pipe or socket) or ``cannot be read`` (permissions).
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{printable(path)}: symlink loop (too many levels of symbolic links)") from None
        if exc.errno == errno.ENOENT:
            dangling = " (a symbolic link to a missing target)" if path.is_symlink() else ""
            raise UserError(f"{printable(path)}: {missing}{dangling}") from None
        raise UserError(f"{printable(path)}: cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{printable(path)}: is a directory, expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{printable(path)}: not a regular file (a device, pipe or socket), expected a {what}")
    if not os.access(path, os.R_OK):
        raise UserError(f"{printable(path)}: cannot be read: permission denied")
    return path


def read_text_file(path: Union[str, os.PathLike], what: str = "file", missing: str = "no such file",
                   max_bytes: int = 64 << 20) -> str:
    """The UTF-8 text of a small input file (a YAML spec, config or grid), or a one-line :class:`UserError`.

    Besides :func:`check_regular_file`'s reasons: larger than ``max_bytes`` or not UTF-8 (the byte offset is
    named). A UTF-8 byte-order mark is dropped.
    """
    path = check_regular_file(path, what, missing)
    size = path.stat().st_size
    if size > max_bytes:
        raise UserError(f"{printable(path)}: {size:,} bytes, too large for a {what} (limit {max_bytes >> 20} MiB)")
    try:
        return path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UserError(f"{printable(path)}: not UTF-8 text (at byte offset {exc.start}); expected a {what}") from None
    except OSError as exc:
        raise UserError(f"{printable(path)}: cannot be read: {exc.strerror or exc}") from None
