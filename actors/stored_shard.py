"""A shard bound to its pattern store: loads its bucket range at start, makes adds durable before they
are acknowledged. Plain class; ``actors.ray_shard`` wraps it in a Ray actor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.shard import LocalTop, Shard, ShardStats
from cluster.stores.clickhouse import PatternStore
from schema.rules.query import QueryOptions


class StoredShard:
    def __init__(self, shard: Shard, store: PatternStore | None = None):
        self.shard = shard
        self.store = store

    def load(self, batch_rows: int = 65536) -> int:
        """Index every stored pattern of this shard's bucket range (all KBs); returns how many were added."""
        if self.store is None:
            return 0
        added = 0
        for batch in self.store.iter_all_buckets(self.shard.bucket_lo, self.shard.bucket_hi, batch_rows):
            added += self._index(pa.Table.from_batches([batch]))
        return added

    def _index(self, table: pa.Table) -> int:
        added = 0
        kb_ids = table.column("kb_id")
        for kb_id in pc.unique(kb_ids).to_pylist():
            rows = table.filter(pc.equal(kb_ids, kb_id))
            added += self.shard.add(kb_id, rows.column("name").to_pylist(), rows.column("pattern_data").to_pylist())
        return added

    def add_table(self, table: pa.Table) -> int:
        """Store then index the rows not yet known (rows shaped like ``schema.pattern_rows.PATTERN_SCHEMA``)."""
        if table.num_rows == 0:
            return 0
        kb_ids = table.column("kb_id").to_pylist()
        names = table.column("name").to_pylist()
        fresh = np.array([name not in self.shard.kb(kb) for kb, name in zip(kb_ids, names)], dtype=bool)
        if not fresh.any():
            return 0
        new_rows = table.filter(pa.array(fresh))
        if self.store is not None:
            self.store.insert_patterns(new_rows)
        return self._index(new_rows)

    def query(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> LocalTop:
        return self.shard.query(kb_id, stm, options)

    def drop_kb(self, kb_id: str) -> None:
        if self.store is not None:
            self.store.drop_kb(kb_id)
        self.shard.drop_kb(kb_id)

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return self.shard.export(kb_id)

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return self.shard.get(kb_id, name)

    def count(self, kb_id: str) -> int:
        return self.shard.count(kb_id)

    def stats(self) -> ShardStats:
        return self.shard.stats()
