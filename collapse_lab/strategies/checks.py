"""The config rules the strategies own: the method and consistency names, and which fusions a method can train.

Called by :func:`collapse_lab.resolve.check_config` when a config is resolved (docs/architecture.md §2, §5), so
``collapse_lab.config`` needs no import of this package.
"""

from __future__ import annotations

from typing import Any

from collapse_lab.errors import check_key
from collapse_lab.strategies.base import STRATEGIES
from collapse_lab.strategies.consistency import CONSISTENCY

__all__ = ["check_config"]


def check_config(cfg: Any) -> None:
    """Check ``cfg.method``, ``cfg.cons`` and ``cfg.fusion`` (a :class:`~collapse_lab.config.TrainConfig` or any
    object with those attributes); raise a one-line :class:`~collapse_lab.errors.UserError` naming the key.

    A concat-fusion head learns only from a loss on the fused output; a method whose class says
    ``trains_fused_output = False`` (dml, kdef) would leave it a random readout that drives early stopping.

    Example:
        >>> from types import SimpleNamespace
        >>> check_config(SimpleNamespace(method="kdef", cons="mse", fusion="concat"))
        Traceback (most recent call last):
        ...
        collapse_lab.errors.UserError: config key 'fusion': expected mean or sum with method kdef (it puts no \
loss on the fused output, so a concat head never trains), got 'concat'
    """
    for key, registry in (("method", STRATEGIES), ("cons", CONSISTENCY)):
        value = getattr(cfg, key)
        check_key(value in registry, key, f"one of {', '.join(registry.names())}", value)
    trains_fused = getattr(STRATEGIES.get(cfg.method), "trains_fused_output", True)
    check_key(cfg.fusion != "concat" or trains_fused, "fusion",
              f"mean or sum with method {cfg.method} (it puts no loss on the fused output, so a concat head never "
              "trains)", cfg.fusion)
