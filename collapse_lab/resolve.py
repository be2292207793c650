"""Resolve a training config and check it against the code that will run it (docs/architecture.md §2, §5).

    resolve_config(...)  =  config.resolve_config(...)        keys, types, ranges, n against students
                            -> models.check_config(cfg)       student names, student_args, fusion, form, capacity
                            -> strategies.check_config(cfg)   method and consistency names, concat vs method

This module sits above :mod:`collapse_lab.config`, :mod:`collapse_lab.models` and :mod:`collapse_lab.strategies`,
so the config imports neither and each registry's owner keeps its own rules. Training, the sweep grid and
``train --config`` (FuxiCTR files) resolve through here, so a bad name or argument is a one-line
:class:`~collapse_lab.errors.UserError` naming the key before anything is built or written.

Example:
    >>> resolve_config(["method=kdef", "fusion=concat"])
    Traceback (most recent call last):
    ...
    collapse_lab.errors.UserError: config key 'fusion': expected mean or sum with method kdef (it puts no loss on \
the fused output, so a concat head never trains), got 'concat'
    >>> resolve_config(["n=2", "students=[mlp,mlp]", "student_args.mlp.hidden_units=[8]"]).student_args
    {'mlp': {'hidden_units': [8]}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from collapse_lab import config as _config
from collapse_lab.config import ConfigLike, TrainConfig

__all__ = ["check_config", "resolve_config"]


def check_config(cfg: TrainConfig) -> TrainConfig:
    """Run the owners' checks (models, then strategies) on a config that :mod:`collapse_lab.config` validated."""
    from collapse_lab.models import check_config as check_models
    from collapse_lab.strategies import check_config as check_strategies

    check_models(cfg)
    check_strategies(cfg)
    return cfg


def resolve_config(overrides: ConfigLike = None, config_file: Union[str, Path] | None = None,
                   base: TrainConfig | None = None) -> TrainConfig:
    """:func:`collapse_lab.config.resolve_config` (same arguments) followed by :func:`check_config`."""
    return check_config(_config.resolve_config(overrides, config_file, base))
