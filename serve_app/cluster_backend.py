"""The knowledge backend of the cluster: shards for patterns, Redis for statistics and the write-ahead log,
the store for vectors.

Implements ``schema.rules.session_logic.KnowledgeBackend``. A learn returns once its statistics and the rows
of the patterns it creates are durable in one atomic Redis step (``cluster.stores.learn_commit``; the rows go
to the owning shards' logs). It does not wait for the shards: every shard read first indexes what its logs
gained since it last looked (``actors.stored_shard.StoredShard.catch_up``), so the next prediction, from any
replica, sees the learn. The shards move their logs to ClickHouse in batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from cluster.stores.learn_commit import Guard, MapGuard
from cluster.stores.pattern_log import LogKeys, log_appends
from cluster.stores.redis_kb import RedisKB
from cluster.stores.shard_map import ShardMapStore
from cluster.stores.vector_buffer import VectorBuffer
from schema.errors import ShardUnavailable, StaleShardMap
from schema.learning import LearnedPattern
from schema.pattern_rows import pattern_table
from schema.placement import BucketRange, ShardMap, owners
from schema.rules.matching import CandidateMatch
from schema.rules.metrics import CorpusStats, pattern_intrinsics
from schema.rules.query import QueryOptions
from schema.rules.session_logic import PendingView
from serve_app.predictor import Predictor, ShardClient, needed_symbols

_ROUTE_ATTEMPTS = 5


class ClusterShards(ShardClient, Protocol):
    def index_tables(self, tables: Mapping[int, pa.Table]) -> int: ...

    def sync(self, shard_map: ShardMap) -> None:
        """Reach every shard the map names (a reshard added or removed some)."""
        ...

    def wait_ready(self, deadline_seconds: float = 60.0) -> None: ...

    def drop_kb(self, kb_id: str) -> None: ...

    def stats(self) -> list[Any]: ...

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]: ...

    def get(self, kb_id: str, name: str) -> list[list[str]] | None: ...


class VectorStore(Protocol):
    """The nodes' vector index and pending buffers (spec §5): ``actors.vector_index.NodeVectors`` in this
    process, or ``actors.ray_shard.ShardVectorStore`` (the same, owned by shard 0's actor)."""

    def observe_vector(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        """The 3 nearest indexed vectors of an observation's sum, which is then buffered."""
        ...

    def flush_vectors(self, kb_id: str) -> int:
        """Index the node's buffer and empty it."""
        ...

    def drop_kb(self, kb_id: str) -> None:
        """The node's buffer and indexed vectors."""
        ...


class ClusterBackend:
    """``ranges`` are the shards' ranges when there is no saved shard map (``maps``: the map in Redis, which a
    reshard changes; without it the ranges never change)."""

    def __init__(self, shards: ClusterShards, ranges: Sequence[BucketRange], redis_kb: RedisKB,
                 vector_store: VectorStore | None = None, index_wait: float = 60.0, log_keys: LogKeys | None = None,
                 maps: ShardMapStore | None = None):
        self.shards = shards
        self.maps = maps
        fixed = ShardMap(1, tuple(ranges))
        self.map = maps.initialize(fixed) if maps is not None else fixed
        self.redis_kb = redis_kb
        self.vector_store = vector_store
        self.predictor = Predictor(shards, self._read_stats,
                                   (lambda: self.map.version) if maps is not None else (lambda: None))
        self.before_change: Callable[[str], None] = lambda _kb_id: None  # the service settles pending predictions
        self.index_wait = index_wait
        self.log_keys = (log_keys or LogKeys()).on(redis_kb.client)

    @property
    def ranges(self) -> tuple[BucketRange, ...]:
        return self.map.ranges

    def refresh_map(self) -> ShardMap:
        """The saved map again (after a request met a newer one), and the shards it names."""
        if self.maps is not None:
            latest = self.maps.load()
            if latest is not None:
                self.map = latest
                self.shards.sync(latest)
        return self.map

    def _read_stats(self, kb_id: str, candidates: list[CandidateMatch], weight_symbols: list[str],
                    as_of: str | None = None) -> CorpusStats:
        return self.redis_kb.corpus_stats(kb_id, [c.name for c in candidates], needed_symbols(candidates),
                                          weight_symbols, as_of)

    def store_patterns(self, kb_id: str, patterns: Sequence[LearnedPattern]) -> int:
        """Log and index pattern rows without statistics (``import-kato`` brings its own); returns how many the
        shards did not hold yet."""
        if not patterns:
            return 0
        self.before_change(kb_id)
        table = self._table(kb_id, patterns)
        owner = self._owners(table)
        names = table.column("name").to_pylist()
        self.redis_kb.append_log(log_appends(self.log_keys, kb_id, table, owner, names),
                                 self._registrations(kb_id, owner))
        return self._index(table, owner)

    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int, view: PendingView | None = None) -> None:
        """The pending observes are not computed first: the commit keeps what it overwrites for them (and for
        ``view``, the learning session's own observe not stored yet), ``cluster.stores.kb_overlay``."""
        self._commit(kb_id, [pattern], persistence, view=view)

    def learn_batch(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int,
                    guard: Guard | None = None) -> list[bool]:
        """Bulk learn: same end state as learning the patterns one by one, in order; applied only while
        ``guard`` holds (``cluster.stores.learn_commit.Guard``)."""
        self.before_change(kb_id)
        return self._commit(kb_id, patterns, persistence, guard)

    def _commit(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int,
                guard: Guard | None = None, view: PendingView | None = None) -> list[bool]:
        """Route the batch's new rows by the shard map and commit them to their shards' logs (the shards index
        them from there on their next read); a map that changed meanwhile (a reshard's cut-over) makes the commit
        fail untouched and route again."""
        if not patterns and guard is None:
            return []
        table = self._table(kb_id, patterns)
        buckets = tuple(np.unique(table.column("bucket").to_numpy()).tolist())
        for attempt in range(_ROUTE_ATTEMPTS):
            owner = self._owners(table)
            map_guard = MapGuard(self.maps.key, self.map.version, buckets) if self.maps is not None else None
            try:
                new = self.redis_kb.learn_batch(kb_id, patterns, persistence,
                                                partial(log_appends, self.log_keys, kb_id, table, owner),
                                                self._registrations(kb_id, owner), guard, map_guard,
                                                (view.session_id, view.record) if view is not None else None)
            except StaleShardMap:
                if attempt == _ROUTE_ATTEMPTS - 1:
                    raise
                self.refresh_map()
                continue
            return new
        raise AssertionError("unreachable")

    @staticmethod
    def _table(kb_id: str, patterns: Sequence[LearnedPattern]) -> pa.Table:
        """The rows of the batch's distinct patterns."""
        return pattern_table(kb_id, list({p.name: p for p in patterns}.values()))

    def _owners(self, table: pa.Table) -> np.ndarray:
        """The shard owning each row under the current map."""
        return owners(table.column("bucket").to_numpy().astype(np.int64), self.ranges)

    def _registrations(self, kb_id: str, owner: np.ndarray) -> list[tuple[str, str]]:
        """A shard's registry must name the KB before its log does (so a restarted shard finds the log)."""
        return [(self.log_keys.registry(shard_id), kb_id) for shard_id in np.unique(owner).tolist()]

    def _index(self, table: pa.Table, owner: np.ndarray) -> int:
        """Index committed rows on the shards they were routed to (``owner[i]`` for row i). Once committed, a
        learn is not failed for a restarting shard: the shard replays its log when it is back, so this waits for
        it (up to ``index_wait`` seconds)."""
        deadline = time.monotonic() + self.index_wait
        tables = {int(s): table.filter(pa.array(owner == s)) for s in np.unique(owner).tolist()}
        while True:
            try:
                return self.shards.index_tables(tables)
            except ShardUnavailable:
                if time.monotonic() > deadline:
                    raise
                self.shards.wait_ready(max(1.0, deadline - time.monotonic()))

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions, as_of: str | None = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The shards answer for the map version of the request; one that moved on makes it ask again. With
        ``as_of`` (an overlay key), over the KB as it was before the learns the overlay records."""
        try:
            return self.predictor.predict(kb_id, stm, options, as_of)
        except StaleShardMap:
            self.refresh_map()
            return self.predictor.predict(kb_id, stm, options, as_of)

    def vector_symbols(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        """The observation's symbol plus the 3 nearest indexed vectors; the vector waits for the next learn."""
        return [name, *(self.vector_store.observe_vector(kb_id, name, vector) if self.vector_store else [])]

    def flush_vectors(self, kb_id: str) -> None:
        """Every call of the learn routine indexes the node's buffer (spec §5.3); an empty buffer costs one
        Redis read, not a call to the index's owner."""
        if self.vector_store is not None and VectorBuffer(self.redis_kb.client).has_pending(kb_id):
            self.vector_store.flush_vectors(kb_id)

    def pattern_events(self, kb_id: str, name: str) -> list[list[str]] | None:
        return self.shards.get(kb_id, name)

    def clear_kb(self, kb_id: str) -> None:
        """clear-all: the KB's patterns on every shard, its vectors and every ``{kb_id}:*`` key."""
        self.before_change(kb_id)
        self.shards.drop_kb(kb_id)
        if self.vector_store is not None:
            self.vector_store.drop_kb(kb_id)
        self.redis_kb.clear_kb(kb_id)

    def finalize_training(self, kb_id: str) -> int:
        """Whole-pattern entropies and TF vectors of every pattern of the KB, written to Redis (spec §3.7)."""
        self.before_change(kb_id)
        patterns = self.shards.export(kb_id)
        names = [n for n, _ in patterns]
        symbols = list(dict.fromkeys(s for _, events in patterns for e in events for s in e))
        stats = self.redis_kb.corpus_stats(kb_id, names, symbols)
        self.redis_kb.write_intrinsics(kb_id, {
            name: pattern_intrinsics(events, stats.pmf, stats.total_symbols, stats.total_unique_patterns)
            for name, events in patterns})
        return len(patterns)
