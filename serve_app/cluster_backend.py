"""The knowledge backend of the cluster: shards for patterns, Redis for statistics, the store for vectors.

Implements ``schema.rules.session_logic.KnowledgeBackend``. A learn is acknowledged only after the pattern
row is durable in ClickHouse (through its shard) and its statistics are in Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pyarrow as pa

from cluster.stores.redis_kb import RedisKB
from schema.learning import LearnedPattern
from schema.pattern_rows import pattern_table
from schema.placement import BucketRange, split_by_owner
from schema.rules.matching import CandidateMatch
from schema.rules.metrics import CorpusStats, pattern_intrinsics
from schema.rules.query import QueryOptions
from serve_app.predictor import Predictor, ShardClient, needed_symbols

NEAREST_VECTORS = 3


class ClusterShards(ShardClient, Protocol):
    def add_tables(self, tables: Sequence[pa.Table | None]) -> int: ...

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
                 vector_store: VectorStore | None = None):
        self.shards = shards
        self.ranges = list(ranges)
        self.redis_kb = redis_kb
        self.vector_store = vector_store
        self.predictor = Predictor(shards, self._read_stats)
        self.before_change: Callable[[str], None] = lambda _kb_id: None  # the service settles pending predictions

    def _read_stats(self, kb_id: str, candidates: list[CandidateMatch], weight_symbols: list[str]) -> CorpusStats:
        return self.redis_kb.corpus_stats(kb_id, [c.name for c in candidates], needed_symbols(candidates),
                                          weight_symbols)

    def store_patterns(self, kb_id: str, patterns: Sequence[LearnedPattern]) -> int:
        """Make the pattern rows durable and indexed on their owning shards (no statistics: ``import-kato``
        brings its own); returns how many were new."""
        if not patterns:
            return 0
        self.before_change(kb_id)
        return self._store(kb_id, patterns)

    def _store(self, kb_id: str, patterns: Sequence[LearnedPattern]) -> int:
        unique = list({p.name: p for p in patterns}.values())
        return self.shards.add_tables(split_by_owner(pattern_table(kb_id, unique), self.ranges))

    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int) -> None:
        self.before_change(kb_id)
        self._store(kb_id, [pattern])
        self.redis_kb.learn(kb_id, pattern, persistence)
        self._flush_pending_vectors(kb_id)

    def learn_batch(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int) -> list[bool]:
        """Bulk learn: same end state as learning the patterns one by one, in order."""
        self.before_change(kb_id)
        self._store(kb_id, patterns)
        return self.redis_kb.learn_batch(kb_id, patterns, persistence)

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
