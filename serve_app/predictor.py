"""The predictor: fan a query out to every shard, merge the local tops, add corpus metrics, rank.

Shards are reached through ``ShardClient`` so the same code drives in-process shards (``serve_app.local_shards``:
tests, the single-process mode) and Ray actors (``actors.ray_shard.RayShards``). The statistics of the merged
patterns are read (``CorpusReader.pattern_stats``) while their candidates are assembled; those of their symbols,
known only then, after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from actors.shard import LocalTop, assemble_order, top_order
from schema.events import flatten
from schema.rules.matching import CandidateMatch
from schema.rules.metrics import CorpusStats
from schema.rules.query import QueryOptions
from schema.rules.reference import weight_symbols
from schema.rules.scoring import score


class ShardClient(Protocol):
    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
                   version: int | None = None) -> list[LocalTop]:
        """Every shard's local top for the STM, one answer per shard, in one round trip; each answers for the
        shard-map ``version`` (None: no map)."""
        ...


class CorpusReader(Protocol):
    """A KB's statistics (``cluster.stores.redis_kb.RedisKB``) in the two reads a prediction makes."""

    def pattern_stats(self, kb_id: str, names: list[str]) -> CorpusStats: ...

    def add_symbol_stats(self, kb_id: str, stats: CorpusStats, symbols: list[str], weight_symbols: list[str]
                         ) -> CorpusStats: ...


class FixedCorpus:
    """The statistics of a KB that holds them itself (the reference engine's), for either read."""

    def __init__(self, stats: Callable[[], CorpusStats]):
        self.stats = stats

    def pattern_stats(self, kb_id: str, names: list[str]) -> CorpusStats:
        return self.stats()

    def add_symbol_stats(self, kb_id: str, stats: CorpusStats, symbols: list[str], weight_symbols: list[str]
                         ) -> CorpusStats:
        return stats


def needed_symbols(candidates: Sequence[CandidateMatch]) -> list[str]:
    """Symbols whose pmf the metrics read: matches and missing of every candidate (spec §2.2), sorted."""
    return sorted({s for c in candidates for s in c.matches} | {s for c in candidates for e in c.missing for s in e})


class Predictor:
    def __init__(self, shards: ShardClient, corpus: CorpusReader,
                 map_version: Callable[[], int | None] = lambda: None):
        self.shards = shards
        self.corpus = corpus
        self.map_version = map_version
        self._reads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pattern-stats")

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not flatten(stm):
            return [], []
        tops = self.shards.query_many(kb_id, stm, options, self.map_version())
        order = top_order(tops, 3 * options.max_predictions)
        if not order:
            return [], []
        pattern_stats = self._reads.submit(self.corpus.pattern_stats, kb_id, [name for _, _, name, _, _ in order])
        merged = assemble_order(tops, order, stm)
        weights = weight_symbols(stm, merged)
        stats = self.corpus.add_symbol_stats(kb_id, pattern_stats.result(), needed_symbols(merged),
                                             weights if options.affinity_emotive else [])  # only affinity reads them
        return score(merged, stm, stats, options.ranking, weights, sum(top.total for top in tops))
