"""Streaming vocabularies with FuxiCTR semantics, keyed by 64-bit token hashes.

Tokens are identified by ``pandas.util.hash_array`` (SipHash with a fixed key, so stable across runs and
machines); a Criteo-sized training split (~33M distinct raw tokens) then needs 16 bytes per distinct token
instead of a Python string each. The chance that two of n distinct tokens collide is about n²/2⁶⁵ (3·10⁻⁵
for n = 33M).

Id assignment follows FuxiCTR's ``Tokenizer.build_vocab``: tokens sorted by training count (descending;
ties by hash), those with count ≥ ``min_count`` get ids ``1..n`` in that order, the ``fill_na`` token is never
in the vocabulary, ``0`` is padding, ``n + 1`` is OOV and the table has ``n + 2`` rows.

Example:
    >>> import numpy as np
    >>> c = TokenCounter()
    >>> c.add(hash_tokens(np.array(["a", "b", "c"], dtype=object)), np.array([5, 1, 3]))
    >>> c.add(hash_tokens(np.array(["b"], dtype=object)), np.array([1]))
    >>> v = Vocabulary.build(*c.result(), min_count=2)
    >>> v.num_tokens, v.oov_idx, v.vocab_size
    (3, 4, 5)
    >>> v.encode(hash_tokens(np.array(["a", "c", "b", "zzz"], dtype=object))).tolist()
    [1, 2, 3, 4]
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

__all__ = ["hash_tokens", "TokenCounter", "Vocabulary"]


def hash_tokens(values: np.ndarray) -> np.ndarray:
    """uint64 hashes of an array of tokens (object strings, or numbers; numbers hash by value)."""
    import pandas as pd

    return pd.util.hash_array(np.asarray(values), categorize=False)


def _reduce(hashes: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sum ``counts`` per distinct hash; returns sorted unique hashes and their totals."""
    if hashes.size == 0:
        return hashes.astype(np.uint64), counts.astype(np.int64)
    order = np.argsort(hashes, kind="stable")
    h, c = hashes[order], counts[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    return h[starts], np.add.reduceat(c, starts)


class TokenCounter:
    """Accumulates (hash, count) pairs chunk by chunk; merges lazily so the work stays O(n log n) overall."""

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)
        self._counts = np.empty(0, dtype=np.int64)
        self._pending: List[Tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, hashes: np.ndarray, counts: np.ndarray) -> None:
        self._pending.append((np.asarray(hashes, dtype=np.uint64), np.asarray(counts, dtype=np.int64)))
        self._pending_size += len(hashes)
        if self._pending_size > max(1 << 20, 2 * len(self._hashes)):
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        hs = [self._hashes] + [h for h, _ in self._pending]
        cs = [self._counts] + [c for _, c in self._pending]
        self._hashes, self._counts = _reduce(np.concatenate(hs), np.concatenate(cs))
        self._pending, self._pending_size = [], 0

    def result(self) -> Tuple[np.ndarray, np.ndarray]:
        """(sorted unique hashes uint64, counts int64)."""
        self._merge()
        return self._hashes, self._counts


class Vocabulary:
    """Hash -> id mapping of one field (padding 0, tokens 1..n, OOV n+1)."""

    def __init__(self, keys: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> None:
        self._keys = keys  # sorted uint64 hashes of the kept tokens
        self._ids = ids  # int32 id of each key
        self.token_counts = counts  # int64 (n,) training count of ids 1..n
        self.tokens = np.full(len(keys), None, dtype=object)  # id-1 -> token text, filled while encoding train

    @classmethod
    def build(cls, hashes: np.ndarray, counts: np.ndarray, min_count: int = 1,
              exclude: np.ndarray | None = None) -> Vocabulary:
        """Keep tokens with ``count >= min_count`` (minus ``exclude`` hashes); ids by descending count."""
        keep = counts >= min_count
        if exclude is not None and len(exclude):
            keep &= ~np.isin(hashes, exclude)
        h, c = hashes[keep], counts[keep]
        order = np.lexsort((h, -c))  # primary: count descending; ties: hash ascending
        ids = np.empty(len(h), dtype=np.int32)
        ids[order] = np.arange(1, len(h) + 1, dtype=np.int32)
        return cls(h, ids, c[order])

    @property
    def num_tokens(self) -> int:
        return int(len(self._keys))

    @property
    def oov_idx(self) -> int:
        return self.num_tokens + 1

    @property
    def vocab_size(self) -> int:
        return self.num_tokens + 2

    def encode(self, hashes: np.ndarray) -> np.ndarray:
        """int32 ids of token hashes; unknown hashes map to the OOV id."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if self.num_tokens == 0:
            return np.full(hashes.shape, self.oov_idx, dtype=np.int32)
        pos = np.minimum(np.searchsorted(self._keys, hashes), self.num_tokens - 1)
        found = self._keys[pos] == hashes
        return np.where(found, self._ids[pos], self.oov_idx).astype(np.int32)

    def remember(self, ids: np.ndarray, texts: np.ndarray) -> None:
        """Record the text of known ids (first seen wins) for ``vocab.json``."""
        known = (ids >= 1) & (ids <= self.num_tokens)
        idx = ids[known] - 1
        todo = np.equal(self.tokens[idx], None)
        self.tokens[idx[todo]] = texts[known][todo]
