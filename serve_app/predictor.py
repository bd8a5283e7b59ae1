"""The predictor: fan a query out to every shard, merge the local tops, add corpus metrics, rank.

Shards are reached through ``ShardClient`` so the same code drives in-process shards (tests, the
single-process mode) and Ray actors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from actors.matching import CandidateMatch
from actors.shard import LocalRanking, LocalTop, merge_rankings, merge_tops
from schema.events import flatten
from serve_app.corpus_metrics import CorpusStats, score
from serve_app.reference_engine import QueryOptions, weight_symbols


class ShardClient(Protocol):
    """Shards behind some transport. ``one_round_trip``: a call costs more than materializing a whole local
    top (shards in other processes), so the predictor asks each shard for its materialized local top at once
    instead of ranking first and materializing only the merged top."""

    one_round_trip: bool

    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                   ) -> list[LocalTop]:
        """The local top candidates of every shard, one answer per shard."""
        ...

    def rank_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> list[LocalRanking]:
        """Phase one: every shard's local ranking (sort keys only)."""
        ...

    def materialize_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
                         names: Sequence[Sequence[str]]) -> list[list[CandidateMatch]]:
        """Phase two: the fields of the chosen candidates, ``names[i]`` from shard ``i``."""
        ...


StatsReader = Callable[[str, list[CandidateMatch], list[str]], CorpusStats]


class LocalShards:
    """In-process shards (``Shard`` or ``StoredShard``), queried in parallel threads (the kernels release
    the GIL)."""

    def __init__(self, shards: Sequence[Any], parallel: bool = True, one_round_trip: bool = False):
        self.shards = list(shards)
        self.one_round_trip = one_round_trip
        self._pool = ThreadPoolExecutor(max_workers=len(self.shards)) if parallel and len(self.shards) > 1 else None

    def _each(self, call, items=None):
        items = self.shards if items is None else items
        if self._pool is None:
            return [call(item) for item in items]
        return list(self._pool.map(call, items))

    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> list[LocalTop]:
        return self._each(lambda shard: shard.query(kb_id, stm, options))

    def rank_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> list[LocalRanking]:
        return self._each(lambda shard: shard.rank(kb_id, stm, options))

    def materialize_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
                         names: Sequence[Sequence[str]]) -> list[list[CandidateMatch]]:
        return [shard.materialize(kb_id, stm, options, chosen) if chosen else []
                for shard, chosen in zip(self.shards, names)]

    def add_tables(self, tables: Sequence[Any]) -> int:
        return sum(shard.add_table(t) for shard, t in zip(self.shards, tables) if t is not None and t.num_rows)

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
    """Symbols whose pmf the metrics read: matches and missing of every candidate (spec §2.2)."""
    return list(dict.fromkeys(s for c in candidates for s in [*c.matches, *flatten(c.missing)]))


class Predictor:
    def __init__(self, shards: ShardClient, read_stats: StatsReader):
        self.shards = shards
        self.read_stats = read_stats

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if not flatten(stm):
            return [], []
        limit = 3 * options.max_predictions
        if self.shards.one_round_trip:
            tops = self.shards.query_many(kb_id, stm, options)
            merged, total = merge_tops(tops, limit), sum(t.total for t in tops)
        else:
            rankings = self.shards.rank_many(kb_id, stm, options)
            chosen = merge_rankings(rankings, limit)
            merged = [c for part in self.shards.materialize_many(kb_id, stm, options, chosen) for c in part] \
                if any(chosen) else []
            total = sum(r.total for r in rankings)
        if not merged:
            return [], []
        weights = weight_symbols(stm, merged)
        stats = self.read_stats(kb_id, merged, weights)
        return score(merged, stm, stats, options.ranking, weights, total)
