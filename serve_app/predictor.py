"""The predictor: fan a query out to every shard, merge the local tops, add corpus metrics, rank.

Shards are reached through ``ShardClient`` so the same code drives in-process shards (tests, the
single-process mode) and Ray actors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from actors.shard import LocalTop, merge_tops
from schema.events import flatten
from schema.rules.matching import CandidateMatch
from schema.rules.metrics import CorpusStats
from schema.rules.query import QueryOptions
from schema.rules.reference import weight_symbols
from schema.rules.scoring import score


class ShardClient(Protocol):
    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> list[LocalTop]:
        """Every shard's local top for the STM, one answer per shard, in one round trip."""
        ...


StatsReader = Callable[[str, list[CandidateMatch], list[str]], CorpusStats]


class LocalShards:
    """In-process shards (``Shard`` or ``StoredShard``), queried in parallel threads (the kernels release
    the GIL)."""

    def __init__(self, shards: Sequence[Any], parallel: bool = True):
        self.shards = list(shards)
        self._pool = ThreadPoolExecutor(max_workers=len(self.shards)) if parallel and len(self.shards) > 1 else None

    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> list[LocalTop]:
        if self._pool is None:
            return [shard.query(kb_id, stm, options) for shard in self.shards]
        return list(self._pool.map(lambda shard: shard.query(kb_id, stm, options), self.shards))

    def index_tables(self, tables: Sequence[Any]) -> int:
        return sum(shard.index_table(t) for shard, t in zip(self.shards, tables) if t is not None and t.num_rows)

    def flush(self) -> int:
        return sum(shard.flush() for shard in self.shards)

    def wait_ready(self, deadline_seconds: float = 60.0) -> None:
        """In-process shards are always ready."""

    def drop_kb(self, kb_id: str) -> None:
        for shard in self.shards:
            shard.drop_kb(kb_id)

    def stats(self) -> list[Any]:
        return [shard.stats() for shard in self.shards]

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return [item for shard in self.shards for item in shard.export(kb_id)]

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return next((e for shard in self.shards if (e := shard.get(kb_id, name)) is not None), None)


def needed_symbols(candidates: Sequence[CandidateMatch]) -> list[str]:
    """Symbols whose pmf the metrics read: matches and missing of every candidate (spec §2.2), sorted."""
    return sorted({s for c in candidates for s in c.matches} | {s for c in candidates for e in c.missing for s in e})


class Predictor:
    def __init__(self, shards: ShardClient, read_stats: StatsReader):
        self.shards = shards
        self.read_stats = read_stats

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not flatten(stm):
            return [], []
        tops = self.shards.query_many(kb_id, stm, options)
        merged = merge_tops(tops, 3 * options.max_predictions, stm)
        if not merged:
            return [], []
        weights = weight_symbols(stm, merged)
        stats = self.read_stats(kb_id, merged, weights if options.affinity_emotive else [])  # only affinity reads them
        return score(merged, stm, stats, options.ranking, weights, sum(top.total for top in tops))
