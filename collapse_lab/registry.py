"""A tiny name -> factory registry (timm's ``register_model`` pattern, without import-order magic).

Example:
    >>> students = Registry("student")
    >>> @students.register("toy")
    ... def make_toy(width: int = 2):
    ...     return ("toy", width)
    >>> students.create("toy", width=3)
    ('toy', 3)
    >>> students.names()
    ['toy']
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, TypeVar

from collapse_lab.errors import UserError

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Maps names to factories; unknown names raise a :class:`UserError` listing the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorator(factory: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
