"""User-facing errors.

Library code raises :class:`UserError` for bad input (missing file, unknown key, corrupt checkpoint...).
The CLI turns it into a one-line message on stderr and exit code 2, never a traceback; notebook users get an
ordinary exception with the same message.
"""

from __future__ import annotations

__all__ = ["UserError", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input that the user can fix; the message must name the file/line/key and what was expected."""

    exit_code = EXIT_USER_ERROR
