"""``torch.load`` restricted to plain tensor checkpoints, with one-line errors.

``torch.load(path, weights_only=True)`` unpickles only tensors and plain containers; anything else (a class,
a function, ``os.system``...) is refused. Its error message then advises re-running with
``weights_only=False`` — which would execute whatever the pickle asks for, so that advice is never passed on:
the file is reported as not a plain tensor checkpoint, refused for safety. Empty, truncated and corrupt files are
one-line :class:`~collapse_lab.errors.UserError` s naming the file (torch raises ``EOFError`` without a message,
``RuntimeError``, ``zipfile.BadZipFile``... depending on where the bytes stop).
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, Union

from collapse_lab.errors import UserError
from collapse_lab.io.inputs import check_regular_file, printable

__all__ = ["load_plain_torch", "load_npz", "refusal_message", "first_line", "numpy_message", "NPY_ERRORS"]

#: what a failed load can raise besides UnpicklingError (the weights-only unpickler wraps most problems in it)
_CORRUPT = (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError,
            AssertionError, OverflowError, MemoryError, UnicodeDecodeError, struct.error, zipfile.BadZipFile)


#: what numpy raises on a damaged .npy/.npz: the header is a Python literal parsed with ``ast``/``tokenize``, the
#: shape can overflow, an .npz is a zip whose members may be deflated, encrypted or of an unknown zip version
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError, TypeError, KeyError, IndexError,
              OverflowError, MemoryError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception message (its type name when empty), escaped, at most 300
    characters; long ones are cut after their first sentence."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    if len(line) > 160 and ". " in line:
        line = line[: line.index(". ") + 1]
    return printable(line[:300])


def refusal_message(path: Union[str, os.PathLike], exc: BaseException) -> str:
    """One line saying that the weights-only unpickler refused ``path`` (without torch's advice to disable it)."""
    text = str(exc).replace("\n", " ")
    g = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if g:
        return (f"{path}: refused: not a plain tensor checkpoint, and unpickling it would import and run arbitrary "
                f"code ({printable(g.group(1))}); it is not loaded, for safety. Re-save the state dict from code "
                "you trust, or convert it to safetensors")
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s+Please|\s+Check the documentation|$)", text)
    reason = f" ({printable(m.group(1).strip())[:200]})" if m else ""
    return (f"{path}: refused by torch.load(weights_only=True){reason}: not a plain tensor checkpoint (corrupt, or "
            "a pickle that would need arbitrary code); it is not loaded, for safety")


def load_plain_torch(path: Union[str, os.PathLike], what: str = "torch checkpoint", mmap: bool | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with one-line errors.

    Args:
        path: the file.
        what: what the file should be, for messages.
        mmap: memory-map the storages (None: when the file is a zip checkpoint, which mmap requires).

    Raises:
        UserError: missing or unreadable file, empty/truncated/corrupt data, or a pickle that needs code.
    """
    import torch

    path = check_regular_file(Path(path), what)
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file, expected a {what}")
    try:
        if mmap is None:
            mmap = zipfile.is_zipfile(path)  # raises BadZipFile on some damaged end records
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4"
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise UserError(refusal_message(path, exc)) from None
    except _CORRUPT as exc:
        raise UserError(f"{path}: not a readable {what} (truncated or corrupt?): {type(exc).__name__}: "
                        f"{first_line(exc)}") from None


def numpy_message(exc: BaseException) -> str:
    """:func:`first_line` of a numpy loading error, without numpy's advice to allow pickles."""
    if isinstance(exc, ValueError) and "pickle" in str(exc):
        return "it holds Python objects (pickled data), which are not loaded, for safety"
    return first_line(exc)


def load_npz(path: Union[str, os.PathLike], what: str = ".npz archive of arrays") -> Dict[str, Any]:
    """Every array of an ``.npz`` archive as ``{name: ndarray}`` (``allow_pickle=False``), or a one-line
    :class:`UserError` naming the file."""
    import numpy as np

    path = check_regular_file(Path(path), what)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            return {key: np.asarray(data[key]) for key in data.files}
    except NPY_ERRORS as exc:
        raise UserError(f"{path}: not a readable {what} (truncated or corrupt?): {numpy_message(exc)}") from None
