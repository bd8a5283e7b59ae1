"""The knowledge backend of the cluster: shards for patterns, Redis for statistics and the write-ahead log,
the store for vectors.

Implements ``schema.rules.session_logic.KnowledgeBackend``. A learn returns once its statistics and the rows
of the patterns it creates are durable in one atomic Redis step (``cluster.stores.learn_commit``; the rows go
to the owning shards' logs) and the owning shards have indexed those rows, so the next prediction sees them.
The shards move their logs to ClickHouse in batches (``actors.stored_shard``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from cluster.stores.learn_commit import Guard
from cluster.stores.pattern_log import LogKeys, log_appends
from cluster.stores.redis_kb import RedisKB
from schema.errors import ShardUnavailable
from schema.learning import LearnedPattern
from schema.pattern_rows import pattern_table
from schema.placement import BucketRange, owners, split_by_owner
from schema.rules.matching import CandidateMatch
from schema.rules.metrics import CorpusStats, pattern_intrinsics
from schema.rules.query import QueryOptions
from serve_app.predictor import Predictor, ShardClient, needed_symbols

NEAREST_VECTORS = 3


class ClusterShards(ShardClient, Protocol):
    def index_tables(self, tables: Sequence[pa.Table | None]) -> int: ...

    def wait_ready(self, deadline_seconds: float = 60.0) -> None: ...

    def drop_kb(self, kb_id: str) -> None: ...

    def stats(self) -> list[Any]: ...

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]: ...

    def get(self, kb_id: str, name: str) -> list[list[str]] | None: ...


class VectorStore(Protocol):
    """Where a KB's vectors are indexed (``PatternStore``, or one reached through a shard actor)."""

    def nearest_vectors(self, kb_id: str, vector: Sequence[float], k: int = 3) -> list[str]: ...

    def insert_vectors(self, kb_id: str, names: Sequence[str], vectors: Sequence[Sequence[float]]) -> None: ...

    def drop_kb(self, kb_id: str) -> None: ...


class ClusterBackend:
    def __init__(self, shards: ClusterShards, ranges: Sequence[BucketRange], redis_kb: RedisKB,
                 vector_store: VectorStore | None = None, index_wait: float = 60.0, log_keys: LogKeys | None = None):
        self.shards = shards
        self.ranges = list(ranges)
        self.redis_kb = redis_kb
        self.vector_store = vector_store
        self.predictor = Predictor(shards, self._read_stats)
        self.before_change: Callable[[str], None] = lambda _kb_id: None  # the service settles pending predictions
        self.index_wait = index_wait
        self.log_keys = log_keys or LogKeys()

    def _read_stats(self, kb_id: str, candidates: list[CandidateMatch], weight_symbols: list[str]) -> CorpusStats:
        return self.redis_kb.corpus_stats(kb_id, [c.name for c in candidates], needed_symbols(candidates),
                                          weight_symbols)

    def store_patterns(self, kb_id: str, patterns: Sequence[LearnedPattern]) -> int:
        """Log and index pattern rows without statistics (``import-kato`` brings its own); returns how many the
        shards did not hold yet."""
        if not patterns:
            return 0
        self.before_change(kb_id)
        table, owner = self._rows(kb_id, patterns)
        names = table.column("name").to_pylist()
        self.redis_kb.append_log(log_appends(self.log_keys, kb_id, table, owner, names),
                                 self._registrations(kb_id, owner))
        return self._index(table)

    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int) -> None:
        self.before_change(kb_id)
        self._commit(kb_id, [pattern], persistence)
        self._flush_pending_vectors(kb_id)

    def learn_batch(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int,
                    guard: Guard | None = None) -> list[bool]:
        """Bulk learn: same end state as learning the patterns one by one, in order; applied only while
        ``guard`` holds (``cluster.stores.learn_commit.Guard``)."""
        self.before_change(kb_id)
        return self._commit(kb_id, patterns, persistence, guard)

    def _commit(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int,
                guard: Guard | None = None) -> list[bool]:
        if not patterns and guard is None:
            return []
        table, owner = self._rows(kb_id, patterns)
        new = self.redis_kb.learn_batch(kb_id, patterns, persistence,
                                        lambda names: log_appends(self.log_keys, kb_id, table, owner, names),
                                        self._registrations(kb_id, owner), guard)
        created = {p.name for p, is_new in zip(patterns, new) if is_new}
        if created:
            names = table.column("name").to_pylist()
            self._index(table.filter(pa.array([name in created for name in names])))
        return new

    def _rows(self, kb_id: str, patterns: Sequence[LearnedPattern]) -> tuple[pa.Table, np.ndarray]:
        """The rows of the batch's distinct patterns and the shard owning each."""
        table = pattern_table(kb_id, list({p.name: p for p in patterns}.values()))
        return table, owners(table.column("bucket").to_numpy().astype(np.int64), self.ranges)

    def _registrations(self, kb_id: str, owner: np.ndarray) -> list[tuple[str, str]]:
        """A shard's registry must name the KB before its log does (so a restarted shard finds the log)."""
        return [(self.log_keys.registry(shard_id), kb_id) for shard_id in np.unique(owner).tolist()]

    def _index(self, table: pa.Table) -> int:
        """Index committed rows on their shards. Once committed, a learn is not failed for a restarting shard:
        the shard replays its log when it is back, so this waits for it (up to ``index_wait`` seconds)."""
        deadline = time.monotonic() + self.index_wait
        while True:
            try:
                return self.shards.index_tables(split_by_owner(table, self.ranges))
            except ShardUnavailable:
                if time.monotonic() > deadline:
                    raise
                self.shards.wait_ready(max(1.0, deadline - time.monotonic()))

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.predictor.predict(kb_id, stm, options)

    def _pending_key(self, kb_id: str) -> str:
        return f"{kb_id}:pending_vectors"

    def vector_symbols(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        """The observation's symbol plus the 3 nearest stored vectors; the vector waits for the next learn."""
        nearest = self.vector_store.nearest_vectors(kb_id, vector, NEAREST_VECTORS) if self.vector_store else []
        self.redis_kb.client.hset(self._pending_key(kb_id), name, json.dumps([float(x) for x in vector]))
        return [name, *nearest]

    def _flush_pending_vectors(self, kb_id: str) -> None:
        """Vectors observed on the node since the previous learn are indexed at learn time (spec §5)."""
        if self.vector_store is None:
            return
        pending = self.redis_kb.client.hgetall(self._pending_key(kb_id))
        if pending:
            names = sorted(map(str, pending))
            self.vector_store.insert_vectors(kb_id, names, [json.loads(pending[n]) for n in names])
            self.redis_kb.client.hdel(self._pending_key(kb_id), *names)

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
