"""Training: the loop (trainer.py), evaluation, probes and the ``train()`` API (api.py).

The notebook entry point is the function ``collapse_lab.train(config)`` (``collapse_lab/__init__.py``), which
forwards to :func:`collapse_lab.training.api.train`; this package has its own name so that importing it never
rebinds that function ([architecture.md](../../docs/architecture.md) §4, "one name per concept").
"""

from __future__ import annotations

__all__: list = []
