"""The student contract: what every sub-network of the ensemble is, takes and lists (docs/architecture.md §3).

A student maps the shared embedding input ``h`` of shape ``(B, F*D)`` (the F field vectors of width D,
concatenated field-major by :class:`~collapse_lab.models.embedding.SharedEmbedding`) to one logit ``z_k``
(docs/method.md §2.2)::

    z_k, last_k = Student_k(h)          (B,), (B, H_last)     last_k feeds the concat fusion

A student that needs the field axis views ``h`` as ``(B, F, D)`` (``h.view(B, F, D)``); it gets ``F`` and ``D``
from its :class:`StudentInput`. Every student:

- is registered once, with the dataclass of its own arguments (:func:`register_student`); unknown or badly
  typed arguments are one-line :class:`~collapse_lab.errors.UserError` s naming the key (:func:`parse_student_args`);
- initialises every random tensor from the ``generator`` it is given (students of one ensemble differ by design);
- writes the activations it wants probed into ``hidden`` (a dict keyed by the module name relative to the student,
  e.g. ``layers.0``), when ``hidden`` is not None;
- lists its analysable matrices by kind (:meth:`Student.matrices`): ``linear`` (a dense layer's weight),
  ``cross`` (a cross/interaction layer's weight), ``attention`` (query/key/value/output projections) and
  ``embedding`` (a student-owned table, e.g. a wide part's per-feature weights), so the spectral analysis and the
  figures find them without name patterns.

Example:
    >>> from collapse_lab.models.students import build_student, StudentInput
    >>> s = build_student("mlp", StudentInput(num_fields=3, embedding_dim=4), {"hidden_units": [8, 8]})
    >>> [m.name for m in s.matrices()]
    ['layers.0.linear.weight', 'layers.1.linear.weight']
    >>> parse_student_args("mlp", {"hidden_unit": [8]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    collapse_lab.errors.UserError: student 'mlp': unknown argument 'hidden_unit'; valid: batch_norm, ...
"""

from __future__ import annotations

import abc
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Tuple, Type

import torch
from torch import Tensor, nn

from collapse_lab.errors import UserError
from collapse_lab.registry import Registry

__all__ = ["MATRIX_KINDS", "SHARED_ARGS", "Matrix", "Student", "StudentEntry", "StudentInput", "STUDENTS",
           "build_student", "parse_student_args", "register_student", "resolve_student_args", "student_arg_names"]

#: the kinds of analysable matrices a student lists
MATRIX_KINDS: Tuple[str, ...] = ("linear", "cross", "attention", "embedding")

#: name -> :class:`StudentEntry`
STUDENTS = Registry("student")

#: top-level config keys that fill the same-named argument of every student that has one (unless the student's
#: ``student_args`` block sets it): the DNN widths, its dropout and its BatchNorm switch (FuxiCTR spellings)
SHARED_ARGS: Tuple[str, ...] = ("hidden_units", "net_dropout", "batch_norm")


@dataclass(frozen=True)
class StudentInput:
    """The shape of the shared input: ``F`` field vectors of width ``D`` (``h`` is ``(B, F*D)``)."""

    num_fields: int
    embedding_dim: int

    @property
    def input_dim(self) -> int:
        """``F * D``."""
        return self.num_fields * self.embedding_dim


@dataclass(frozen=True)
class Matrix:
    """One analysable matrix of a student.

    Attributes:
        name: the parameter's name relative to the student (``layers.0.linear.weight``); inside an ensemble it is
            ``students.<k>.<name>``.
        kind: one of :data:`MATRIX_KINDS`.
        layer: a short label for tables and figures (``mlp.0``, ``cross.1``, ``attention.0.query``).
        activation: the key the student writes into ``hidden`` for this layer's output (``layers.0``), or None
            when the layer's output is not probed; inside an ensemble it is ``students.<k>.<activation>`` (the
            manifest's ``hidden_layers[*].name``, docs/architecture.md §6.2).
    """

    name: str
    kind: str
    layer: str
    activation: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in MATRIX_KINDS:
            raise ValueError(f"matrix {self.name!r}: kind {self.kind!r} is not one of {MATRIX_KINDS}")


class Student(nn.Module, metaclass=abc.ABCMeta):
    """Base class of the students: ``forward(h, hidden=None) -> (logit (B,), last (B, output_dim))``."""

    #: the registered name (set by :func:`register_student`)
    name: str = ""

    def __init__(self, inp: StudentInput) -> None:
        super().__init__()
        self.inp = inp

    @property
    @abc.abstractmethod
    def output_dim(self) -> int:
        """Width of ``last``, the representation the concat fusion reads."""

    @abc.abstractmethod
    def forward(self, h: Tensor, hidden: Dict[str, Tensor] | None = None) -> Tuple[Tensor, Tensor]:
        """``(B, F*D)`` -> (logit ``(B,)``, last representation ``(B, output_dim)``)."""

    @abc.abstractmethod
    def matrices(self) -> List[Matrix]:
        """The analysable matrices, in layer order."""


@dataclass(frozen=True)
class StudentEntry:
    """A registry entry: the student class and the dataclass of its arguments."""

    name: str
    cls: Type[Student]
    args_type: type

    def __call__(self, inp: StudentInput, args: Any = None, generator: torch.Generator | None = None) -> Student:
        parsed = args if isinstance(args, self.args_type) else parse_student_args(self.name, args)
        return self.cls(inp, parsed, generator)


def register_student(name: str, args_type: type) -> Callable[[Type[Student]], Type[Student]]:
    """Class decorator: register ``cls(inp, args, generator)`` under ``name`` with its argument dataclass."""
    if not dataclasses.is_dataclass(args_type):
        raise TypeError(f"student {name!r}: args_type must be a dataclass")

    def decorator(cls: Type[Student]) -> Type[Student]:
        cls.name = name
        STUDENTS.register(name)(StudentEntry(name, cls, args_type))
        return cls

    return decorator


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a simple annotation (int, float, bool, str, List[int], Optional[...])."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: expected a string, got {value!r}")
    if origin in (list, List):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0] if args else Any, where) for v in value]
    return value


def student_arg_names(name: str) -> List[str]:
    """The argument names of student ``name`` (the fields of its argument dataclass), in declaration order."""
    entry: StudentEntry = STUDENTS.get(name)
    return [f.name for f in dataclasses.fields(entry.args_type)]


def parse_student_args(name: str, args: Mapping[str, Any] | None = None, where: str | None = None) -> Any:
    """The argument dataclass of student ``name``: defaults <- ``args`` (checked key by key, then validated).

    The dataclass may define ``validate(self)`` raising :class:`UserError` for out-of-range values. With ``where``
    (a config key such as ``student_args.ecn``) every message names the config key ``<where>.<argument>``.
    """
    entry: StudentEntry = STUDENTS.get(name)
    args_type = entry.args_type
    fields = {f.name: f for f in dataclasses.fields(args_type)}
    hints = typing.get_type_hints(args_type)
    given = dict(args or {})
    kwargs: Dict[str, Any] = {}
    for key, value in given.items():
        if key not in fields:
            if where is not None:
                raise UserError(f"config key '{where}.{key}': student {name!r} has no argument {key!r}; "
                                f"valid: {', '.join(sorted(fields))}")
            raise UserError(f"student {name!r}: unknown argument {key!r}; valid: {', '.join(sorted(fields))}")
        label = f"config key '{where}.{key}'" if where is not None else f"student {name!r} argument {key!r}"
        kwargs[key] = _coerce(value, hints[key], label)
    parsed = args_type(**kwargs)
    validate = getattr(parsed, "validate", None)
    if callable(validate):
        try:
            validate()
        except UserError as exc:
            if where is None:
                raise
            raise UserError(f"config key '{where}': {exc}") from None
    return parsed


def resolve_student_args(name: str, block: Mapping[str, Any] | None = None,
                         shared: Mapping[str, Any] | None = None) -> Any:
    """The arguments student ``name`` is built with, from the config (docs/architecture.md §5)::

        args = dataclass defaults  <-  shared[key] for key in SHARED_ARGS the student has  <-  block

    ``shared`` holds the top-level ``hidden_units`` / ``net_dropout`` / ``batch_norm``; ``block`` is
    ``student_args[name]``. Errors name ``student_args.<name>.<key>``.

    Example:
        >>> resolve_student_args("mlp", {"net_dropout": 0.3}, {"hidden_units": [8], "net_dropout": 0.1})
        MLPArgs(hidden_units=[8], net_dropout=0.3, batch_norm=True)
    """
    names = set(student_arg_names(name))
    merged = {k: v for k, v in (shared or {}).items() if k in SHARED_ARGS and k in names}
    if block is not None and not isinstance(block, Mapping):
        raise UserError(f"config key 'student_args.{name}': expected a mapping of argument: value, got {block!r}")
    merged.update(block or {})
    return parse_student_args(name, merged, where=f"student_args.{name}")


def build_student(name: str, inp: StudentInput, args: Mapping[str, Any] | Any = None,
                  generator: torch.Generator | None = None) -> Student:
    """Build student ``name`` for input ``inp`` with its arguments (a mapping or its dataclass)."""
    entry: StudentEntry = STUDENTS.get(name)
    return entry(inp, args, generator)
