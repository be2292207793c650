"""The perf-table workload on collapse-lab's side: one KDEF training step at B = 4096 on ML-100K-shaped data.

Shared by ``bench/perf_table.py`` and ``bench/profile_step.py`` (docs/performance.md §1, §3): 8 categorical fields
(ML-100K has 7 categorical fields and one pooled sequence field), d = 16, each of N students an MLP
128 -> 400 -> 400 -> 400 -> 1 with BatchNorm and dropout 0.1, mean fusion, KDEF loss, embedding L2 1e-5, gradient
clipping at 10, Adam; ``precision`` as in the trainer (:mod:`collapse_lab.training.precision`). The batches are
drawn once and cycled, so the timing is the step, not the data pipeline (``bench/bench_data.py`` times that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence

FIELDS = 8
VOCAB = 1000
EMBEDDING_DIM = 16
HIDDEN = (400, 400, 400)


def student_weights(fields: int = FIELDS, d: int = EMBEDDING_DIM, hidden: Sequence[int] = HIDDEN) -> int:
    """W: weights of one student's Linear layers, hidden layers plus the head: sum_j H_{j-1} H_j + H_last."""
    dims = [fields * d, *hidden, 1]
    return sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True))


class Workload:
    """Model, task, optimizer and a few cycled batches of the collapse-lab step (see the module docstring)."""

    def __init__(self, tmp: Path, n: int, precision: str = "fp32", batch_size: int = 4096, batches: int = 4,
                 hidden: Sequence[int] = HIDDEN, method: str = "kdef", seed: int = 2024) -> None:
        import torch

        from collapse_lab.data.dataset import BatchIterator, ProcessedDataset
        from collapse_lab.data.synthetic import make_synthetic
        from collapse_lab.models import build_ensemble
        from collapse_lab.strategies import build_strategy
        from collapse_lab.training.precision import install_precision, resolve_precision

        rows = int(batch_size * batches / 0.8) + batch_size
        path = Path(tmp) / f"perf-{rows}"
        if not path.exists():
            make_synthetic(path, rows=rows, fields=FIELDS, vocab_size=VOCAB, seed=1)
        data = ProcessedDataset(path)
        torch.manual_seed(seed)
        self.model = build_ensemble(data.feature_map, num_students=n, embedding_dim=EMBEDDING_DIM,
                                    hidden_units=list(hidden), net_dropout=0.1, batch_norm=True, fusion="mean",
                                    form="loop", seed=seed)
        self.precision, self.note = resolve_precision(precision, "cpu")
        install_precision(self.model, self.precision, "cpu")
        self.task = build_strategy(method, num_students=n)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        it = BatchIterator(data.split("train"), batch_size, shuffle=True, seed=seed, drop_last=True)
        self.batches: List[Any] = [b for _, b in zip(range(batches), it, strict=False)]
        self.i = 0

    def step(self) -> None:
        from collapse_lab.training.trainer import training_step

        training_step(self.model, self.task, self.optimizer, self.batches[self.i % len(self.batches)], 1e-5, 10.0)
        self.i += 1
