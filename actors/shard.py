"""The shard: a plain class holding the patterns of its bucket range and answering candidate queries.

A query returns the shard's local top ``3·max_predictions`` candidates by pre-potential (ties: similarity
desc, name asc) with every per-candidate field. Because that order is total, the predictor's merge of the
local tops equals the reference engine's pruning over the whole corpus.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from rapidfuzz import fuzz, process

from actors import kernels
from actors.columns import Vocabulary
from actors.compact import CompactCandidates, compact_candidates
from actors.filters import pipeline_candidates
from actors.kb_index import KBIndex
from actors.lsh import VocabularyRows
from schema.events import flatten
from schema.rules.matching import CandidateMatch, extract
from schema.rules.query import QueryOptions

Owned = tuple[int, int] | None
"""A range of home buckets a query or count is limited to (None: every pattern the shard holds)."""


@dataclass
class LocalTop:
    """A shard's answer to a query: its local top (names and sort keys, best first), how many candidates
    passed the threshold before truncation, and their fields: compact arrays in token mode, materialized
    candidates otherwise (character mode, fuzzy tokens)."""

    names: list[str] = field(default_factory=list)
    pre_potentials: list[float] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    total: int = 0
    candidates: list[CandidateMatch] | None = None
    compact: CompactCandidates | None = None

    def take(self, positions: Sequence[int], stm: list[list[str]]) -> list[CandidateMatch]:
        if self.compact is not None:
            return self.compact.assemble(positions, [self.names[p] for p in positions], stm)
        return [self.candidates[p] for p in positions] if self.candidates is not None else []


@dataclass
class LocalRanking:
    """Phase one of a query: the shard's best candidates as sort keys, and how many passed the threshold."""

    names: list[str] = field(default_factory=list)
    pre_potentials: np.ndarray = field(default_factory=lambda: np.empty(0))
    similarities: np.ndarray = field(default_factory=lambda: np.empty(0))
    total: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # the shard's local ids of ``names``


def merge_tops(tops: Sequence[LocalTop], limit: int, stm: Sequence[Sequence[str]]) -> list[CandidateMatch]:
    """The global top ``limit`` of several local tops by (pre-potential desc, similarity desc, name asc), with
    every field. That order is total, so this is exactly the reference engine's pruning over the whole corpus;
    only the kept candidates are assembled."""
    sizes = [len(top.names) for top in tops]
    if not sum(sizes):
        return []
    owner = np.repeat(np.arange(len(tops)), sizes)
    position = np.concatenate([np.arange(n) for n in sizes])
    names = np.array([name for top in tops for name in top.names])
    pre = np.concatenate([np.asarray(top.pre_potentials, dtype=np.float64) for top in tops])
    sims = np.concatenate([np.asarray(top.similarities, dtype=np.float64) for top in tops])
    kept = np.lexsort((names, -sims, -pre))[:limit]  # stable: equal keys stay in shard, then rank order
    stm_events = [list(e) for e in stm]
    assembled: dict[tuple[int, int], CandidateMatch] = {}
    kept_owner, kept_position = owner[kept], position[kept]
    for t in np.unique(kept_owner).tolist():
        positions = kept_position[kept_owner == t].tolist()
        assembled.update(zip(((t, i) for i in positions), tops[t].take(positions, stm_events)))
    return [assembled[(t, i)] for t, i in zip(kept_owner.tolist(), kept_position.tolist())]


@dataclass(frozen=True)
class ShardStats:
    shard_id: int
    bucket_lo: int
    bucket_hi: int
    patterns_per_kb: dict[str, int]
    vocabulary: int
    index_bytes: int
    pid: int = 0  # the process holding the shard (a Ray actor's worker)
    log_rows: int = 0  # rows in the shard's write-ahead logs, not yet in the store
    log_entries: int = 0
    flush_lag_seconds: float = 0.0  # age of the oldest of them
    last_flush_error: str | None = None
    rows_flushed: int = 0  # since the shard started
    store_inserts: int = 0
    store_parts: int = 0  # active parts of the patterns table in the shard's store
    node_id: str = ""  # the Ray node of the process holding the shard ("" in process)
    rss_bytes: int = 0  # that process's resident memory (0 in process)


class Shard:
    def __init__(self, shard_id: int = 0, bucket_lo: int = 0, bucket_hi: int = 65535):
        self.shard_id = shard_id
        self.bucket_lo = bucket_lo
        self.bucket_hi = bucket_hi
        self.vocabulary = Vocabulary()
        self.vocabulary_rows = VocabularyRows(self.vocabulary)
        self.kbs: dict[str, KBIndex] = {}

    def kb(self, kb_id: str) -> KBIndex:
        index = self.kbs.get(kb_id)
        if index is None:
            index = self.kbs[kb_id] = KBIndex(self.vocabulary)
        return index

    def add(self, kb_id: str, names: Sequence[str],
            events_list: Sequence[Sequence[Sequence[str]]] | pa.Array | pa.ChunkedArray,
            buckets: Sequence[int] | np.ndarray | None = None) -> int:
        return self.kb(kb_id).add(names, events_list, buckets)

    def drop_kb(self, kb_id: str) -> None:
        self.kbs.pop(kb_id, None)

    def trim(self) -> None:
        """Give back the unused capacity of every KB's index (after a bulk load)."""
        for index in self.kbs.values():
            index.trim()

    def count(self, kb_id: str, owned: Owned = None) -> int:
        index = self.kbs.get(kb_id)
        if index is None:
            return 0
        return len(index) if owned is None else int(index.within(index.all_ids(), owned).sum())

    def export(self, kb_id: str, owned: Owned = None) -> list[tuple[str, list[list[str]]]]:
        """Every (name, events) of a KB held here (with home buckets in ``owned``, when given)."""
        index = self.kbs.get(kb_id)
        if index is None:
            return []
        ids = index.all_ids() if owned is None else np.flatnonzero(index.within(index.all_ids(), owned))
        return list(zip(index.names_of(ids), index.events_many(ids)))

    def keep_only(self, owned: tuple[int, int]) -> int:
        """Rebuild every KB's index without the patterns whose home bucket is outside ``owned`` (after their
        range moved to another shard); returns how many were dropped."""
        dropped = 0
        for kb_id, index in list(self.kbs.items()):
            keep = np.flatnonzero(index.within(index.all_ids(), owned))
            dropped += len(index) - keep.shape[0]
            if keep.shape[0] == len(index):
                continue
            fresh = KBIndex(self.vocabulary)
            fresh.add(index.names_of(keep), index.events_many(keep), index.buckets.view()[keep].tolist())
            fresh.trim()
            self.kbs[kb_id] = fresh
        return dropped

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        index = self.kbs.get(kb_id)
        local = None if index is None else index.local_of(name)
        return None if index is None or local is None else index.events_of(local)

    def stats(self, owned: Owned = None) -> ShardStats:
        lo, hi = owned if owned is not None else (self.bucket_lo, self.bucket_hi)
        return ShardStats(self.shard_id, lo, hi, {kb: self.count(kb, owned) for kb in self.kbs},
                          len(self.vocabulary), sum(index.nbytes for index in self.kbs.values()), os.getpid())

    def query(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions, owned: Owned = None
              ) -> LocalTop:
        """Local top candidates for an STM with their fields (spec §2.3, §2.4, §3.1), in one call; with
        ``owned``, only patterns whose home bucket is in that range (the shard's own under the caller's map
        version, while it also holds others)."""
        ranking = self.rank(kb_id, stm, options, owned)
        top = LocalTop(ranking.names, ranking.pre_potentials.tolist(), ranking.similarities.tolist(), ranking.total)
        if not ranking.names:
            return top
        state = flatten(stm)
        if self._exact_tokens(options, len(state)):
            top.compact = compact_candidates(self.kbs[kb_id], ranking.ids, self.vocabulary.lookup_state(state))
        else:
            top.candidates = self.materialize(kb_id, stm, options, ranking.names)
            if len(top.candidates) != len(ranking.names):  # a pattern the ranking kept is always materialized
                raise RuntimeError(f"shard {self.shard_id}: ranked {len(ranking.names)} candidates, materialized "
                                   f"{len(top.candidates)}")
        return top

    @staticmethod
    def _exact_tokens(options: QueryOptions, state_length: int) -> bool:
        """Token matching without fuzzy tokens (the single-symbol path never uses fuzzy tokens)."""
        return options.use_token_matching and (state_length == 1 or (options.fuzzy_token_threshold or 0.0) <= 0)

    def rank(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions, owned: Owned = None
             ) -> LocalRanking:
        """The local top ``3·max_predictions`` by (pre-potential desc, similarity desc, name asc), as keys only
        (``query`` adds their fields)."""
        index = self.kbs.get(kb_id)
        state = flatten(stm)
        if index is None or not state or len(index) == 0:
            return LocalRanking()
        state_ids = self.vocabulary.lookup_state(state)
        single = len(state) == 1
        cutoff = 0.0 if single else options.recall_threshold
        fuzzy = 0.0 if single else (options.fuzzy_token_threshold or 0.0)
        exact = self._exact_tokens(options, len(state))
        if single:
            candidates = index.starting_with(int(state_ids[0])) if state_ids[0] >= 0 else np.empty(0, np.int64)
        elif options.filter_pipeline:
            candidates = pipeline_candidates(index, self.vocabulary_rows, state, state_ids, options)
        elif cutoff <= 0.0:
            candidates = index.all_ids()
        elif exact:
            candidates, sims, pre = self._posting_fields(index, state_ids, cutoff)
            return self._ranking(index, candidates, sims, pre, options, owned)
        else:
            candidates = index.containing_any(state_ids[state_ids >= 0])
        if not single and cutoff > 0.0:
            if options.filter_pipeline:
                sharing = index.containing_any(state_ids[state_ids >= 0])
                candidates = np.intersect1d(candidates, sharing, assume_unique=True)
            candidates = self._length_bound(index, candidates, len(state), cutoff, options.use_token_matching)
        if candidates.shape[0] == 0:
            return LocalRanking()
        if exact:
            candidates, sims, pre = self._token_fields(index, candidates, state_ids, cutoff)
        else:
            candidates, sims, pre = self._general_fields(index, candidates, state, state_ids, options, cutoff, fuzzy)
        return self._ranking(index, candidates, sims, pre, options, owned)

    def _ranking(self, index: KBIndex, candidates: np.ndarray, sims: np.ndarray, pre: np.ndarray,
                 options: QueryOptions, owned: Owned = None) -> LocalRanking:
        if owned is not None and candidates.shape[0]:
            mine = index.within(candidates, owned)
            candidates, sims, pre = candidates[mine], sims[mine], pre[mine]
        hidden = index.patterns.find(list(options.hidden)) if options.hidden else np.empty(0, np.int64)
        if hidden.shape[0] and candidates.shape[0]:
            seen = ~np.isin(candidates, hidden[hidden >= 0])
            candidates, sims, pre = candidates[seen], sims[seen], pre[seen]
        if candidates.shape[0] == 0:
            return LocalRanking()
        order = self._top(index, candidates, sims, pre, 3 * options.max_predictions)
        ids = candidates[order]
        return LocalRanking(index.names_of(ids), pre[order], sims[order], int(candidates.shape[0]), ids)

    def _token_fields(self, index: KBIndex, candidates: np.ndarray, state_ids: np.ndarray, cutoff: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kept candidates with similarity and pre-potential in token mode (exact tokens)."""
        kept, sims, pre = kernels.token_rank(
            index.tokens.view(), index.offsets.view(), index.event_sizes.view(), index.event_offsets.view(),
            candidates, state_ids, self._first_in_state(state_ids), cutoff)
        return candidates[kept], sims[kept], pre[kept]

    def _posting_fields(self, index: KBIndex, state_ids: np.ndarray, cutoff: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token mode with a positive threshold: every pattern sharing a token, scored from the postings.

        Patterns with a single state-token position (most of a large corpus) are scored from their posting
        entries; the rest go through the general token kernel.
        """
        entries = index.postings_of(state_ids[state_ids >= 0])
        if entries.shape[0] == 0:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        ids, sims, pre, general = kernels.posting_rank(
            entries["pattern"], entries["detail"], index.offsets.view(), len(index), state_ids.shape[0], cutoff)
        more_ids, more_sims, more_pre = self._token_fields(index, general, state_ids, cutoff)
        return np.concatenate((ids, more_ids)), np.concatenate((sims, more_sims)), np.concatenate((pre, more_pre))

    def _first_in_state(self, state_ids: np.ndarray) -> np.ndarray:
        """For every shard token, its first position in the state, or -1."""
        first = np.full(len(self.vocabulary), -1, np.int64)
        for position in range(state_ids.shape[0] - 1, -1, -1):
            if state_ids[position] >= 0:
                first[state_ids[position]] = position
        return first

    def _general_fields(self, index: KBIndex, candidates: np.ndarray, state: list[str], state_ids: np.ndarray,
                        options: QueryOptions, cutoff: float, fuzzy: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Kept candidates with similarity and pre-potential for character mode and fuzzy tokens."""
        sims = self._similarities(index, candidates, state, state_ids, options.use_token_matching)
        keep = sims >= cutoff
        candidates, sims = candidates[keep], sims[keep]
        fuzzy_hit = self._fuzzy_hits(state, fuzzy) if fuzzy > 0 else np.zeros((1, 1), np.bool_)
        k, _m, _np, _ev, _conf, _snr, pre = kernels.candidate_fields(
            index.tokens.view(), index.offsets.view(), index.event_sizes.view(), index.event_offsets.view(),
            candidates, state_ids, fuzzy_hit, fuzzy > 0)
        if cutoff > 0.0:
            has_blocks = k > 0
            candidates, sims, pre = candidates[has_blocks], sims[has_blocks], pre[has_blocks]
        return candidates, sims, pre

    def materialize(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
                    names: Sequence[str]) -> list[CandidateMatch]:
        """Every per-candidate field of the named patterns (KATO's extraction)."""
        index = self.kbs.get(kb_id)
        if index is None or not names:
            return []
        state = flatten(stm)
        single = len(state) == 1
        cutoff = 0.0 if single else options.recall_threshold
        fuzzy = 0.0 if single else (options.fuzzy_token_threshold or 0.0)
        stm_events = [list(e) for e in stm]
        state_ids = self.vocabulary.lookup_state(state)
        found = index.patterns.find(names)
        known = [(name, local) for name, local in zip(names, found.tolist()) if local >= 0]
        locals_ = found[found >= 0]
        if self._exact_tokens(options, len(state)):
            compact = compact_candidates(index, locals_, state_ids)
            kept = np.flatnonzero((compact.similarities >= cutoff) & ((compact.block_counts() > 0) | (cutoff <= 0.0)))
            return compact.assemble(kept.tolist(), [known[i][0] for i in kept.tolist()], stm_events)
        tokens, offsets = index.tokens.view(), index.offsets.view()
        out = []
        for (name, local), events in zip(known, index.events_many(locals_)):
            pattern_ids = tokens[offsets[local]:offsets[local + 1]]

            def blocks_of(start: int, end: int, ids: np.ndarray = pattern_ids) -> list[tuple[int, int, int]]:
                sub = ids[start:end]
                found = np.empty((min(sub.shape[0], state_ids.shape[0]) + 1, 3), np.int64)
                k = kernels.matching_blocks(sub, state_ids, found)
                return [(int(i), int(j), int(n)) for i, j, n in found[:k].tolist()]

            match = extract(name, events, stm_events, cutoff, options.use_token_matching, fuzzy, blocks_of=blocks_of)
            if match is not None:
                out.append(match)
        return out

    @staticmethod
    def _length_bound(index: KBIndex, candidates: np.ndarray, state_len: int, cutoff: float,
                      token_mode: bool) -> np.ndarray:
        """Token LCS ≤ min(|P|, |S|): drop patterns too long to reach the threshold (lossless)."""
        if not token_mode or candidates.shape[0] == 0:
            return candidates
        lengths = index.lengths_of(candidates).astype(np.float64)
        best = 2.0 * np.minimum(lengths, state_len) / (lengths + state_len)
        return candidates[best >= cutoff - 1e-12]

    @staticmethod
    def _similarities(index: KBIndex, candidates: np.ndarray, state: list[str], state_ids: np.ndarray,
                      token_mode: bool) -> np.ndarray:
        if token_mode:
            return kernels.token_similarities(index.tokens.view(), index.offsets.view(), candidates, state_ids,
                                              ranked=True)
        joined = index.joined()
        choices = [joined[i] for i in candidates.tolist()]
        scores = process.cdist([" ".join(state)], choices, scorer=fuzz.ratio, dtype=np.float64, workers=1)
        return scores[0] / 100.0

    def _fuzzy_hits(self, state: list[str], threshold: float) -> np.ndarray:
        symbols = self.vocabulary.symbols
        if not symbols:
            return np.zeros((len(state), 1), np.bool_)
        scores = process.cdist(state, symbols, scorer=fuzz.ratio, dtype=np.float64, workers=1) / 100.0
        return scores >= threshold

    @staticmethod
    def _top(index: KBIndex, candidates: np.ndarray, sims: np.ndarray, pre: np.ndarray, limit: int) -> np.ndarray:
        """Positions (into ``candidates``) of the top ``limit`` in the total order, best first."""
        if candidates.shape[0] <= limit:
            subset = np.arange(candidates.shape[0])
        else:
            kth = np.partition(pre, candidates.shape[0] - limit)[candidates.shape[0] - limit]
            subset = np.flatnonzero(pre >= kth)
        order = np.lexsort((*index.patterns.sort_keys(candidates[subset]), -sims[subset], -pre[subset]))
        return subset[order[:limit]]
