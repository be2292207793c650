"""Training: the loop (trainer.py), evaluation, probes and the ``train()`` API (api.py).

``collapse_lab.train`` is both this package and the notebook entry point ``collapse_lab.train(config)``:
importing a submodule (``collapse_lab.train.api``) rebinds the attribute ``collapse_lab.train`` from the
forwarding function to this module, so the module itself is made callable and forwards to
:func:`collapse_lab.train.api.train`. Either way ``collapse_lab.train(config)`` trains.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__: list = []


class _CallableModule(types.ModuleType):
    """This package, callable as ``collapse_lab.train(config, **kwargs)``."""

    def __call__(self, config: Any = None, **kwargs: Any) -> Any:
        from collapse_lab.train.api import train

        return train(config, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
