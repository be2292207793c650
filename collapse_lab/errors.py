"""User-facing errors.

Library code raises :class:`UserError` for bad input (missing file, unknown key, corrupt checkpoint...).
The CLI turns it into a one-line message on stderr and exit code 2, never a traceback; notebook users get an
ordinary exception with the same message.
"""

from __future__ import annotations

from typing import Any

__all__ = ["UserError", "EXIT_USER_ERROR", "check_key"]

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input that the user can fix; the message must name the file/line/key and what was expected."""

    exit_code = EXIT_USER_ERROR


def check_key(cond: bool, key: str, expected: str, value: Any) -> None:
    """Raise ``config key '<key>': expected <expected>, got <value>`` unless ``cond`` (the config checks of
    :mod:`collapse_lab.config` and of the owners of each registry use this one format).

    Example:
        >>> check_key(False, "n", "an integer >= 1", 0)
        Traceback (most recent call last):
        ...
        collapse_lab.errors.UserError: config key 'n': expected an integer >= 1, got 0
    """
    if not cond:
        raise UserError(f"config key {key!r}: expected {expected}, got {value!r}")
