"""In-process shards behind the same client as the Ray actors (tests and the single-process mode)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from actors.shard import LocalTop
from schema.placement import ShardMap
from schema.rules.query import QueryOptions

ShardFactory = Callable[[int, int, int], Any]
"""Makes a shard (``actors.stored_shard.StoredShard``) for a shard id and its range, loaded and flushing."""


def _shard_id(shard: Any) -> int:
    return int(shard.shard.shard_id if hasattr(shard, "shard") else shard.shard_id)


class LocalShards:
    """``Shard`` or ``StoredShard`` objects keyed by shard id, queried in parallel threads (the kernels release
    the GIL). ``factory`` makes the shards a reshard adds."""

    def __init__(self, shards: Sequence[Any], parallel: bool = True, factory: ShardFactory | None = None):
        self.shards: dict[int, Any] = {_shard_id(s): s for s in shards}
        self.factory = factory
        self._pool = ThreadPoolExecutor(max_workers=8) if parallel and len(self.shards) > 1 else None

    def _all(self) -> list[Any]:
        shards = self.shards  # replaced whole, never changed in place: requests in flight see one set
        return [shards[i] for i in sorted(shards)]

    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
                   version: int | None = None) -> list[LocalTop]:
        def ask(shard: Any) -> LocalTop:
            return shard.query(kb_id, stm, options) if version is None else shard.query(kb_id, stm, options, version)

        shards = self._all()
        return list(self._pool.map(ask, shards)) if self._pool is not None else [ask(s) for s in shards]

    def index_tables(self, tables: Mapping[int, pa.Table]) -> int:
        """Rows for a shard that is gone (a merge retired it after they were routed) are skipped: the cut-over
        carried them to their new owner."""
        shards = self.shards
        return sum(shards[sid].index_table(t) for sid, t in tables.items() if t.num_rows and sid in shards)

    def flush(self) -> int:
        return sum(shard.flush() for shard in self._all())

    def wait_ready(self, deadline_seconds: float = 60.0) -> None:
        """In-process shards are always ready."""

    def nodes(self) -> list[dict[str, Any]]:
        """In-process shards run on no Ray node."""
        return []

    def sync(self, shard_map: ShardMap) -> None:
        """In-process shards are added and removed by the reshard itself (``add_shard``/``remove_shard``)."""

    def drop_kb(self, kb_id: str) -> None:
        for shard in self._all():
            shard.drop_kb(kb_id)

    def stats(self) -> list[Any]:
        return [shard.stats() for shard in self._all()]

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return [item for shard in self._all() for item in shard.export(kb_id)]

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return next((e for shard in self._all() if (e := shard.get(kb_id, name)) is not None), None)

    # --------------------------------------------------------------- reshards
    def set_map(self, shard_map: ShardMap) -> None:
        for shard in self._all():
            shard.set_map(shard_map)

    def copy_range(self, src: int, dst: int, lo: int, hi: int) -> tuple[int, int]:
        """The rows of buckets ``lo..hi`` from shard ``src`` into ``dst``; (rows, bytes) copied."""
        rows = self.shards[src].export_range(lo, hi)
        self.shards[dst].import_rows(rows)
        return rows.num_rows, rows.nbytes

    def flush_shard(self, shard_id: int) -> int:
        return self.shards[shard_id].flush()

    def forward_shard(self, shard_id: int) -> int:
        return self.shards[shard_id].forward_pending()

    def index_shard(self, shard_id: int) -> int:
        return self.shards[shard_id].index_pending()

    def finish_move(self, shard_id: int) -> int:
        return self.shards[shard_id].finish_move()

    def add_shard(self, shard_id: int, lo: int, hi: int) -> None:
        if shard_id not in self.shards:
            if self.factory is None:
                raise RuntimeError("these in-process shards were made without a factory: they cannot grow")
            self.shards = {**self.shards, shard_id: self.factory(shard_id, lo, hi)}
            if self._pool is None and len(self.shards) > 1:
                self._pool = ThreadPoolExecutor(max_workers=8)

    def remove_shard(self, shard_id: int) -> None:
        shard = self.shards.get(shard_id)
        if shard is not None and hasattr(shard, "retire"):
            shard.retire()
        self.shards = {sid: s for sid, s in self.shards.items() if sid != shard_id}
