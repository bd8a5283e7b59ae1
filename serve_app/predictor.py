"""The predictor: fan a query out to every shard, merge the local tops, add corpus metrics, rank.

Shards are reached through ``ShardClient`` so the same code drives in-process shards (``serve_app.local_shards``:
tests, the single-process mode) and Ray actors (``actors.ray_shard.RayShards``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from actors.shard import LocalTop, merge_tops
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


StatsReader = Callable[[str, list[CandidateMatch], list[str]], CorpusStats]


def needed_symbols(candidates: Sequence[CandidateMatch]) -> list[str]:
    """Symbols whose pmf the metrics read: matches and missing of every candidate (spec §2.2), sorted."""
    return sorted({s for c in candidates for s in c.matches} | {s for c in candidates for e in c.missing for s in e})


class Predictor:
    def __init__(self, shards: ShardClient, read_stats: StatsReader,
                 map_version: Callable[[], int | None] = lambda: None):
        self.shards = shards
        self.read_stats = read_stats
        self.map_version = map_version

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not flatten(stm):
            return [], []
        tops = self.shards.query_many(kb_id, stm, options, self.map_version())
        merged = merge_tops(tops, 3 * options.max_predictions, stm)
        if not merged:
            return [], []
        weights = weight_symbols(stm, merged)
        stats = self.read_stats(kb_id, merged, weights if options.affinity_emotive else [])  # only affinity reads them
        return score(merged, stm, stats, options.ranking, weights, sum(top.total for top in tops))
