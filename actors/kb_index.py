"""One knowledge base's patterns inside a shard: columnar token arrays and the exact candidate indexes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.columns import GrowableArray, NarrowArray, Vocabulary
from actors.lsh import MinhashIndex, VocabularyRows
from actors.pattern_names import PatternNames
from schema.placement import pattern_buckets

POSTING = np.dtype([("pattern", np.uint32), ("detail", np.uint8)])
"""An inverted-index entry (5 bytes): a pattern holding the token and a detail byte: ``REPEATED`` when the token
occurs more than once in the pattern, plus the size of the event of its first occurrence (``EVENT_SIZE_ESCAPE``
when that does not fit). With the pattern's length that is enough to score a pattern whose only state token is
this one without reading it."""
REPEATED = 0x80
EVENT_SIZE_ESCAPE = 0x7F
"""An event size meaning "127 or more": such a pattern is scored by the general kernel instead."""
TOKEN_IDS = (np.uint16, np.int32)
OFFSETS = (np.uint32, np.int64)
SIZES = (np.uint8, np.uint16, np.int32)
EVENTS_TYPE = pa.list_(pa.list_(pa.string()))
"""A column of patterns' events, as stored rows carry them (``pattern_data``)."""


class KBIndex:
    """Patterns of one kb_id held by one shard.

    Tokens are shard-vocabulary ids, flat with offsets; events are flat sizes with offsets. The inverted index
    maps a token id to the local ids of the patterns containing it (each pattern once per distinct token);
    the first-token index serves the single-symbol path.
    """

    def __init__(self, vocabulary: Vocabulary):
        self.vocabulary = vocabulary
        self.patterns = PatternNames()
        self.tokens = NarrowArray(TOKEN_IDS, 1024)
        self.offsets = NarrowArray(OFFSETS, 256)
        self.offsets.append(0)
        self.event_sizes = NarrowArray(SIZES, 512)
        self.event_offsets = NarrowArray(OFFSETS, 256)
        self.event_offsets.append(0)
        self.distinct_counts = NarrowArray(SIZES, 256)
        self.buckets = GrowableArray(np.uint16, 256)  # each pattern's home bucket (which shard owns it)
        self.minhash: MinhashIndex | None = None
        self.postings: dict[int, GrowableArray] = {}  # token id → POSTING entries, by pattern
        self.first_token: dict[int, GrowableArray] = {}
        self._joined: list[str] | None = None

    def __len__(self) -> int:
        return len(self.patterns)

    def __contains__(self, name: str) -> bool:
        return self.patterns.get(name) is not None

    def add(self, names: Sequence[str], events_list: Sequence[Sequence[Sequence[str]]] | pa.Array | pa.ChunkedArray,
            buckets: Sequence[int] | np.ndarray | None = None) -> int:
        """Add patterns not yet present (with their home buckets, computed when not given); returns how many
        were new. Names are bare 40-hex pattern hashes (ValueError otherwise). ``events_list`` may be an Arrow
        ``list<list<string>>`` column (a store's or a log's rows): it is read as flat arrays, never as Python
        objects per pattern."""
        held = len(self.patterns)
        ids = self.patterns.add(names)
        new_ids, picked = np.unique(ids[ids >= held], return_index=True)
        if not new_ids.shape[0]:
            return 0
        picked = np.flatnonzero(ids >= held)[picked]
        events = _events_array(events_list).take(pa.array(picked))
        flat_events = events.flatten()
        event_sizes = pc.list_value_length(flat_events).to_numpy().astype(np.int64)
        event_counts = pc.list_value_length(events).to_numpy().astype(np.int64)
        tokens = self._token_ids(flat_events.flatten())
        event_offsets, symbol_offsets = events.offsets.to_numpy(), flat_events.offsets.to_numpy()
        token_offsets = (symbol_offsets[event_offsets - event_offsets[0]] - symbol_offsets[0]).astype(np.int64)
        lengths = np.diff(token_offsets)
        self.tokens.extend(tokens)
        self.offsets.extend(int(self.offsets.view()[-1]) + np.cumsum(lengths))
        self.event_sizes.extend(event_sizes)
        self.event_offsets.extend(int(self.event_offsets.view()[-1]) + np.cumsum(event_counts))
        owners = np.repeat(new_ids, lengths)
        distinct_owners = self._index_postings(tokens, owners, event_sizes)
        self.distinct_counts.extend(np.bincount(distinct_owners - held, minlength=len(new_ids)))
        self.buckets.extend(np.asarray(buckets)[picked] if buckets is not None
                            else pattern_buckets(events.to_pylist()))
        starts = token_offsets[:-1]
        firsts = (np.where(lengths > 0, tokens[np.minimum(starts, len(tokens) - 1)], -1) if len(tokens)
                  else np.full(len(new_ids), -1))
        self._index_first_tokens(firsts, new_ids)
        if self._joined is not None:
            self._joined.extend(" ".join(self.symbols_of(i)) for i in new_ids.tolist())
        if self.minhash is not None:
            self.minhash.extend(self.tokens.view(), self.offsets.view())
        return len(new_ids)

    def _index_first_tokens(self, firsts: np.ndarray, locals_: np.ndarray) -> None:
        """Append each pattern to the first-token list of its first token (-1: an empty pattern, none)."""
        order = np.argsort(firsts, kind="stable")
        firsts, locals_ = firsts[order], locals_[order]
        keep = firsts >= 0
        firsts, locals_ = firsts[keep], locals_[keep]
        if not firsts.shape[0]:
            return
        cuts = np.flatnonzero(np.diff(firsts)) + 1
        for token, chunk in zip(firsts[np.concatenate(([0], cuts))].tolist(), np.split(locals_, cuts)):
            self.first_token.setdefault(token, GrowableArray(np.uint32, 4)).extend(chunk)

    def _token_ids(self, symbols: pa.Array) -> np.ndarray:
        """Vocabulary ids of these symbols; new symbols are numbered in order of first appearance."""
        if len(symbols) == 0:
            return np.empty(0, np.int64)
        distinct = pc.unique(symbols)
        vocab = self.vocabulary
        ids = np.fromiter((vocab.add(s) for s in distinct.to_pylist()), np.int64, len(distinct))
        return ids[pc.index_in(symbols, value_set=distinct).to_numpy()]

    def _index_postings(self, tokens: np.ndarray, owners: np.ndarray, event_sizes: np.ndarray) -> np.ndarray:
        """Append each (token, pattern) pair once with its details; returns the owner of every distinct pair."""
        if tokens.shape[0] == 0:
            return np.empty(0, np.int64)
        pair_keys = (tokens << 32) | (owners - owners[0])
        keys, first_at, counts = np.unique(pair_keys, return_index=True, return_counts=True)
        token_ids, pattern_ids = keys >> 32, owners[first_at]
        entries = np.empty(keys.shape[0], POSTING)
        entries["pattern"] = pattern_ids
        entries["detail"] = (np.minimum(np.repeat(event_sizes, event_sizes)[first_at], EVENT_SIZE_ESCAPE)
                             | np.where(counts > 1, REPEATED, 0))
        cuts = np.flatnonzero(np.diff(token_ids)) + 1
        for token, chunk in zip(token_ids[np.concatenate(([0], cuts))].tolist(), np.split(entries, cuts)):
            self.postings.setdefault(token, GrowableArray(POSTING, 8)).extend(chunk)
        return pattern_ids

    def names_of(self, ids: np.ndarray) -> list[str]:
        return self.patterns.names(ids)

    def local_of(self, name: str) -> int | None:
        return self.patterns.get(name)

    def lengths_of(self, ids: np.ndarray) -> np.ndarray:
        """Token count of each of these patterns."""
        offsets = self.offsets.view()
        return offsets[ids + 1].astype(np.int64) - offsets[ids]

    def event_counts_of(self, ids: np.ndarray) -> np.ndarray:
        """Event count of each of these patterns."""
        offsets = self.event_offsets.view()
        return offsets[ids + 1].astype(np.int64) - offsets[ids]

    def symbols_of(self, local: int) -> list[str]:
        offsets = self.offsets.view()
        symbols = self.vocabulary.symbols
        return [symbols[t] for t in self.tokens.view()[offsets[local]:offsets[local + 1]].tolist()]

    def events_of(self, local: int) -> list[list[str]]:
        return self.events_many(np.array([local], dtype=np.int64))[0]

    def events_many(self, locals_: np.ndarray) -> list[list[list[str]]]:
        """``events_of`` for many patterns with one gather of their token ids."""
        if locals_.shape[0] == 0:
            return []
        offsets, e_off = self.offsets.view(), self.event_offsets.view()
        flat = [self.vocabulary.symbols[t] for t in self.tokens.view()[gathered_rows(offsets, locals_)].tolist()]
        sizes = self.event_sizes.view()[gathered_rows(e_off, locals_)].tolist()
        out, pos, at = [], 0, 0
        for count in self.event_counts_of(locals_).tolist():
            events = []
            for size in sizes[at:at + count]:
                events.append(flat[pos:pos + size])
                pos += size
            at += count
            out.append(events)
        return out

    def joined(self) -> list[str]:
        """Space-joined pattern strings for character-mode similarity (built on first use)."""
        if self._joined is None:
            self._joined = [" ".join(self.symbols_of(i)) for i in range(len(self))]
        return self._joined

    def containing_any(self, token_ids: np.ndarray) -> np.ndarray:
        """Local ids of the patterns sharing at least one of these (known) tokens."""
        lists = [entries["pattern"] for entries in self._posting_views(token_ids)]
        if not lists:
            return np.empty(0, dtype=np.int64)
        if len(lists) == 1:
            return lists[0].astype(np.int64)
        marked = np.zeros(len(self), dtype=np.bool_)
        for posting in lists:
            marked[posting] = True
        return np.flatnonzero(marked)

    def postings_of(self, token_ids: np.ndarray) -> np.ndarray:
        """The posting entries of these distinct (known) tokens, concatenated."""
        lists = self._posting_views(token_ids)
        return np.concatenate(lists) if lists else np.empty(0, POSTING)

    def _posting_views(self, token_ids: np.ndarray) -> list[np.ndarray]:
        """The posting entries of each distinct token that has any."""
        return [self.postings[t].view() for t in np.unique(token_ids).tolist() if t in self.postings]

    def starting_with(self, token_id: int) -> np.ndarray:
        found = self.first_token.get(token_id)
        return np.sort(found.view()).astype(np.int64) if found is not None else np.empty(0, dtype=np.int64)

    def minhash_index(self, rows: VocabularyRows) -> MinhashIndex:
        """The KB's LSH index, built on first use and kept up to date by ``add`` afterwards."""
        if self.minhash is None:
            self.minhash = MinhashIndex(rows)
            self.minhash.extend(self.tokens.view(), self.offsets.view())
        return self.minhash

    def shared_token_counts(self, token_ids: np.ndarray) -> np.ndarray:
        """For every pattern, how many of these distinct (known) tokens it contains."""
        counts = np.zeros(len(self), dtype=np.int64)
        for entries in self._posting_views(token_ids):
            counts[entries["pattern"]] += 1
        return counts

    def all_ids(self) -> np.ndarray:
        return np.arange(len(self), dtype=np.int64)

    def within(self, ids: np.ndarray, buckets: tuple[int, int]) -> np.ndarray:
        """Which of these patterns have their home bucket in ``lo..hi`` (a boolean mask)."""
        held = self.buckets.view()[ids]
        return (held >= buckets[0]) & (held <= buckets[1])

    def trim(self) -> None:
        """Give back the arrays' unused capacity (after a bulk load)."""
        for array in (self.tokens, self.offsets, self.event_sizes, self.event_offsets, self.distinct_counts,
                      self.buckets, *self.postings.values(), *self.first_token.values()):
            array.trim()
        self.patterns.trim()

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (their capacity), names and lookup table included."""
        arrays = (self.tokens, self.offsets, self.event_sizes, self.event_offsets, self.distinct_counts,
                  self.buckets)
        lists = sum(p.nbytes for p in self.postings.values()) + sum(f.nbytes for f in self.first_token.values())
        lsh = self.minhash.nbytes if self.minhash is not None else 0
        return sum(a.nbytes for a in arrays) + lists + self.patterns.nbytes + lsh


def gathered_rows(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions ``offsets[r]:offsets[r + 1]`` of every row, concatenated in row order."""
    starts, ends = offsets[rows].astype(np.int64), offsets[rows + 1].astype(np.int64)
    lengths = ends - starts
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(int(lengths.sum()))


def _events_array(events_list: Sequence[Sequence[Sequence[str]]] | pa.Array | pa.ChunkedArray) -> pa.ListArray:
    if isinstance(events_list, pa.ChunkedArray):
        return events_list.combine_chunks()
    if isinstance(events_list, pa.Array):
        return events_list
    return pa.array(events_list, type=EVENTS_TYPE)
