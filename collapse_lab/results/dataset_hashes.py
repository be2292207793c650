"""A warning when the runs of one results table were trained on different preparations of the same dataset.

A sweep kept stale runs (``collapse-lab sweep --keep-stale``), or a dataset was prepared again midway: the runs
then record different content hashes for one dataset, and their numbers are not comparable without saying so.
Each manifest records the hash (``dataset.hash``), so counting them costs nothing beyond what collection reads.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = ["mixed_hash_warnings"]


def mixed_hash_warnings(recorded: Mapping[str, Tuple[Any, Optional[str]]]) -> List[str]:
    """One line per dataset whose runs record more than one content hash, with the number of runs per hash
    (first 12 hex digits, the most common first); ``recorded`` maps run -> ``(dataset id, hash)``. Runs that
    record no hash are left out (nothing to compare).

    Example:
        >>> line = mixed_hash_warnings({"a": ("toy", "1" * 64), "b": ("toy", "1" * 64), "c": ("toy", "2" * 64)})[0]
        >>> line.split("; ")[0]
        'dataset toy: the runs record 2 dataset hashes (2 runs: 111111111111, 1 run: 222222222222)'
        >>> mixed_hash_warnings({"a": ("toy", "1" * 64), "b": ("toy", None)})
        []
    """
    by_dataset: Dict[Any, Counter] = {}
    for dataset, digest in recorded.values():
        if digest:
            by_dataset.setdefault(dataset, Counter())[digest] += 1
    out = []
    for dataset, counts in by_dataset.items():
        if len(counts) > 1:
            shown = ", ".join(f"{k} run{'s' if k != 1 else ''}: {h[:12]}" for h, k in counts.most_common())
            out.append(f"dataset {dataset}: the runs record {len(counts)} dataset hashes ({shown}); they were "
                       "trained on different preparations of it")
    return out
