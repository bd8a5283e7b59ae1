"""The predictor: fan a query out to every shard, merge the local tops, add corpus metrics, rank.

Shards are reached through ``ShardClient`` so the same code drives in-process shards (``serve_app.local_shards``:
tests, the single-process mode) and Ray actors (``actors.ray_shard.RayShards``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
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


StatsReader = Callable[[str, list[CandidateMatch], list[str], "str | None"], CorpusStats]
"""(kb_id, candidates, affinity weight symbols, as_of): the statistics, as of an overlay when given."""

_AS_OF_ATTEMPTS = 5


def needed_symbols(candidates: Sequence[CandidateMatch]) -> list[str]:
    """Symbols whose pmf the metrics read: matches and missing of every candidate (spec §2.2), sorted."""
    return sorted({s for c in candidates for s in c.matches} | {s for c in candidates for e in c.missing for s in e})


class Predictor:
    def __init__(self, shards: ShardClient, read_stats: StatsReader,
                 map_version: Callable[[], int | None] = lambda: None):
        self.shards = shards
        self.read_stats = read_stats
        self.map_version = map_version

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions, as_of: str | None = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """With ``as_of`` (an overlay, ``cluster.stores.kb_overlay``), over the KB as it was before the learns the
        overlay records: the shards hide ``options.hidden`` (the patterns those learns created, read before),
        the statistics are read back through the overlay. A learn that created a pattern in between (the
        statistics name more hidden patterns than the shards hid) makes it ask again."""
        if not flatten(stm):
            return [], []
        for _ in range(_AS_OF_ATTEMPTS):
            tops = self.shards.query_many(kb_id, stm, options, self.map_version())
            merged = merge_tops(tops, 3 * options.max_predictions, stm)
            weights = weight_symbols(stm, merged) if merged else []
            stats = self.read_stats(kb_id, merged, weights if options.affinity_emotive else [], as_of) \
                if merged or as_of is not None else CorpusStats()
            if as_of is None or stats.hidden == options.hidden:
                break
            options = replace(options, hidden=stats.hidden)
        if not merged:
            return [], []
        return score(merged, stm, stats, options.ranking, weights, sum(top.total for top in tops))
