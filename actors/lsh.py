"""MinHash/LSH index of one KB inside a shard: the ``minhash`` filter stage as a band-key lookup.

Built on first use from the shard's token arrays (signatures from per-vocabulary hash rows), extended as
patterns are added. Band keys are kept per band as a sorted base plus a small unsorted tail that is merged
when it grows, so adds stay cheap and lookups are binary searches.
"""

from __future__ import annotations

import numpy as np

from actors.columns import Vocabulary
from schema.minhash import band_keys, minhash_for_state, signatures_from_ids, token_hash_rows

NUM_PERM, BANDS, ROWS = 100, 20, 5


class VocabularyRows:
    """MinHash permutation rows of every vocabulary symbol, extended as the vocabulary grows."""

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self.rows = np.empty((0, NUM_PERM), dtype=np.uint32)

    def current(self) -> np.ndarray:
        known = self.rows.shape[0]
        if known < len(self.vocabulary):
            fresh = token_hash_rows(self.vocabulary.symbols[known:], NUM_PERM, 1).astype(np.uint32)
            self.rows = np.concatenate([self.rows, fresh])
        return self.rows


class MinhashIndex:
    def __init__(self, rows: VocabularyRows):
        self.rows = rows
        self.signatures = np.empty((0, NUM_PERM), dtype=np.uint32)
        self._base_keys = [np.empty(0, np.uint64) for _ in range(BANDS)]
        self._base_ids = [np.empty(0, np.int64) for _ in range(BANDS)]
        self._tail_keys = np.empty((0, BANDS), np.uint64)
        self._tail_start = 0

    def __len__(self) -> int:
        return self.signatures.shape[0]

    def extend(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        """Index patterns ``len(self) ..`` given the KB's flat token ids and offsets."""
        start = len(self)
        if offsets.shape[0] - 1 <= start:
            return
        sub_offsets = offsets[start:] - offsets[start]
        sub_tokens = tokens[offsets[start]:offsets[-1]]
        sigs = signatures_from_ids(sub_tokens, sub_offsets, self.rows.current()).astype(np.uint32)
        self.signatures = np.concatenate([self.signatures, sigs])
        self._tail_keys = np.concatenate([self._tail_keys, band_keys(sigs.astype(np.uint64), BANDS, ROWS)])
        if self._tail_keys.shape[0] > max(1024, len(self) // 8):
            self._merge_tail()

    def _merge_tail(self) -> None:
        ids = np.arange(self._tail_start, self._tail_start + self._tail_keys.shape[0], dtype=np.int64)
        for b in range(BANDS):
            keys = np.concatenate([self._base_keys[b], self._tail_keys[:, b]])
            all_ids = np.concatenate([self._base_ids[b], ids])
            order = np.argsort(keys, kind="stable")
            self._base_keys[b], self._base_ids[b] = keys[order], all_ids[order]
        self._tail_start += self._tail_keys.shape[0]
        self._tail_keys = np.empty((0, BANDS), np.uint64)

    def query_signature(self, state: list[str]) -> np.ndarray:
        return minhash_for_state(set(state), NUM_PERM, 1).astype(np.uint32)

    def candidates(self, query_sig: np.ndarray) -> np.ndarray:
        """Local ids sharing at least one band key with the query."""
        keys = band_keys(query_sig[None, :].astype(np.uint64), BANDS, ROWS)[0]
        found = []
        for b in range(BANDS):
            base = self._base_keys[b]
            lo, hi = np.searchsorted(base, keys[b], "left"), np.searchsorted(base, keys[b], "right")
            found.append(self._base_ids[b][lo:hi])
            tail_hits = np.flatnonzero(self._tail_keys[:, b] == keys[b])
            found.append(tail_hits + self._tail_start)
        return np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)

    def estimated_jaccard(self, ids: np.ndarray, query_sig: np.ndarray) -> np.ndarray:
        return (self.signatures[ids] == query_sig[None, :]).sum(axis=1) / NUM_PERM

    @property
    def nbytes(self) -> int:
        return int(self.signatures.nbytes + self._tail_keys.nbytes
                   + sum(k.nbytes + i.nbytes for k, i in zip(self._base_keys, self._base_ids)))
