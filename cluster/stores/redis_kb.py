"""Per-KB statistics in Redis, in KATO's own key layout (spec §1.6–§1.8, §3.6).

Writes: ``learn_batch`` commits a batch of learns, and the log of the patterns it creates, in one atomic step
(``cluster.stores.learn_commit``). Reads: ``corpus_stats`` fetches everything the metrics need in one
pipelined round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
import redis

from cluster.stores.kb_keys import KBKeys, glob_escape
from cluster.stores.kb_overlay import KBOverlay
from cluster.stores.key_space import hash_tag
from cluster.stores.learn_commit import Guard, LearnCommit, MapGuard, RowsFor
from cluster.stores.pattern_layout import KATO, Slot, claim_layout, layout_for
from cluster.stores.pattern_log import LogAppend
from schema.learning import LearnedPattern
from schema.naming import kb_id_for
from schema.rules.metrics import CorpusStats, PatternIntrinsics
from schema.settings import Settings

INTRINSIC_KEYS = ("entropy", "normalized_entropy", "global_normalized_entropy", "tf_vector")
_SCAN_COUNT = 1000
_DELETE_CHUNK = 500


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)  # int() reads str and bytes alike


class RedisKB:
    def __init__(self, client: redis.Redis, service_name: str = "kato", symbol_to_patterns: bool = False,
                 log_bound: int = 1_000_000, layout: str = KATO) -> None:
        """``layout``: where per-pattern values live (``cluster.stores.pattern_layout``)."""
        self.client = client
        self.service_name = service_name
        self.symbol_to_patterns = symbol_to_patterns
        self.tag = hash_tag(client)
        self.layout = layout_for(layout)
        self._commit = LearnCommit(client, symbol_to_patterns, log_bound, self.layout)

    def keys(self, kb_id: str) -> KBKeys:
        """The KB's key names in this deployment."""
        return KBKeys(kb_id, self.tag)

    def kb_id(self, node_id: str) -> str:
        return kb_id_for(node_id, self.service_name)

    # ------------------------------------------------------------------ writes
    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int) -> bool:
        """Record one learn; True if the pattern is new to the KB."""
        return self.learn_batch(kb_id, [pattern], persistence)[0]

    def learn_batch(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int,
                    rows_for: RowsFor | None = None, registrations: Sequence[tuple[str, str]] = (),
                    guard: Guard | None = None, map_guard: MapGuard | None = None,
                    view: tuple[str, str] | None = None) -> list[bool]:
        """Record the learns in order, with the log of the patterns they create (``rows_for``), under ``guard``;
        element i is True iff learn i created its pattern. ``view`` is a (session id, record id) whose pending
        observe is not stored yet: the learns' overwritten values are kept for it too."""
        if not patterns and guard is None:
            return []
        return self._commit.commit(kb_id, patterns, persistence, rows_for, registrations, guard, map_guard, view)

    def load_progress(self, kb_id: str, load_id: str) -> int | None:
        """Rows of a streamed load committed so far (None: the load never committed a batch)."""
        value = self.client.hget(self.keys(kb_id).bulk_loads, load_id)
        return None if value is None else int(value)

    def batch_applied(self, kb_id: str, batch_id: str) -> bool:
        return bool(self.client.sismember(self.keys(kb_id).applied_batches, batch_id))

    def append_log(self, appends: Sequence[LogAppend], registrations: Sequence[tuple[str, str]] = ()) -> None:
        """Append rows to shard logs without statistics (rows imported with their KATO keys)."""
        self._commit.append(appends, registrations)

    def import_keys(self, kb_id: str, items: Mapping[str, tuple[str, Any]]) -> None:
        """Write a KATO KB's keys (name after ``{kb_id}:`` → (type, value)) in this deployment; per-pattern values
        go where the layout keeps them."""
        keys = self.keys(kb_id)
        pipe = self.client.pipeline(transaction=False)
        for rest, (kind, value) in items.items():
            slot = self._pattern_slot(keys, rest) if kind == "string" else None
            if slot is not None and slot.field is not None:
                if str(value) in ("[]", "{}"):
                    pipe.hdel(slot.key, slot.field)
                else:
                    pipe.hset(slot.key, slot.field, str(value))
                continue
            key = keys.prefix + rest
            pipe.delete(key)
            if kind == "string":
                pipe.set(key, str(value))
            elif kind == "hash" and value:
                pipe.hset(key, mapping={str(k): str(v) for k, v in dict(value).items()})
            elif kind == "set" and value:
                pipe.sadd(key, *[str(v) for v in value])
            elif kind == "list" and value:
                pipe.rpush(key, *[str(v) for v in value])
        pipe.execute()

    def _pattern_slot(self, keys: KBKeys, rest: str) -> Slot | None:
        kind, _, name = rest.partition(":")
        if kind == "frequency":
            return self.layout.frequency(keys, name)
        if kind == "emotives":
            return self.layout.emotives(keys, name)
        if kind == "metadata":
            return self.layout.metadata(keys, name)
        return None

    def write_intrinsics(self, kb_id: str, intrinsics: Mapping[str, PatternIntrinsics]) -> None:
        """Store finalize-training's per-pattern values (spec §3.7)."""
        keys = self.keys(kb_id)
        pipe = self.client.pipeline(transaction=False)
        for name, v in intrinsics.items():
            pipe.set(keys.intrinsic("entropy", name), repr(float(v.entropy)))
            pipe.set(keys.intrinsic("normalized_entropy", name), repr(float(v.normalized_entropy)))
            pipe.set(keys.intrinsic("global_normalized_entropy", name), repr(float(v.global_normalized_entropy)))
            pipe.set(keys.intrinsic("tf_vector", name), json.dumps(v.tf_vector))
        pipe.execute()

    def clear_kb(self, kb_id: str) -> int:
        """Delete every ``{kb_id}:*`` key (SCAN, never KEYS); returns how many were deleted."""
        deleted = 0
        batch: list[str] = []
        for key in self._scan(self.keys(kb_id).match_all()):
            batch.append(key)
            if len(batch) >= _DELETE_CHUNK:
                deleted += self.client.delete(*batch)
                batch = []
        if batch:
            deleted += self.client.delete(*batch)
        return deleted

    # ------------------------------------------------------------------- reads
    def corpus_stats(self, kb_id: str, names: Iterable[str], symbols: Iterable[str],
                     weight_symbols: Iterable[str] = (), as_of: str | None = None) -> CorpusStats:
        """Everything the prediction metrics read, in one pipelined round trip (a second one only for
        patterns with finalize-training values). With ``as_of`` (an overlay key, ``cluster.stores.kb_overlay``),
        the values as they were before the learns it recorded, and ``hidden`` the patterns those learns created;
        the overlay is read last, so a learn committed between the reads is undone as well."""
        keys = self.keys(kb_id)
        names = list(dict.fromkeys(names))
        symbols = list(dict.fromkeys(symbols))
        weight_symbols = list(dict.fromkeys(weight_symbols))
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(keys.symbols_freq)
        pipe.mget([keys.total_symbols, keys.unique_patterns, keys.pattern_frequencies])
        layout = self.layout
        frequencies = [layout.frequency(keys, n) for n in names]
        emotives = [layout.emotives(keys, n) for n in names]
        if names:
            layout.queue_read(pipe, frequencies)
            layout.queue_read(pipe, emotives)
            pipe.mget([keys.intrinsic(INTRINSIC_KEYS[0], n) for n in names])
        if symbols:
            pipe.hmget(keys.symbols_pmf, symbols)
        if weight_symbols:
            pipe.hmget(keys.symbols_freq, weight_symbols)
            for s in weight_symbols:
                pipe.hgetall(keys.affinity(s))
        if as_of is not None:
            pipe.hgetall(as_of)
        replies = pipe.execute()
        seen = KBOverlay(replies.pop()) if as_of is not None else KBOverlay()
        stats = self._stats(keys, iter(replies), seen, (names, frequencies, emotives), symbols, weight_symbols)
        stats.hidden = seen.learned(keys)
        return stats

    def _stats(self, keys: KBKeys, replies: Iterator[Any], seen: KBOverlay,
               patterns: tuple[list[str], list[Slot], list[Slot]], symbols: list[str], weight_symbols: list[str]
               ) -> CorpusStats:
        names, frequency_slots, emotive_slots = patterns
        stats = CorpusStats(total_symbols=seen.hash_length(keys.symbols_freq, int(next(replies))))
        _, unique, frequencies = seen.strings([keys.total_symbols, keys.unique_patterns, keys.pattern_frequencies],
                                              next(replies))
        stats.total_unique_patterns = _int(unique)
        stats.total_pattern_frequencies = _int(frequencies)
        if names:
            counts = seen.values(frequency_slots, next(replies))
            stats.frequencies = {n: _int(v) for n, v in zip(names, counts) if v is not None}
            emotives = seen.values(emotive_slots, next(replies))
            stats.emotives = {n: orjson.loads(v) for n, v in zip(names, emotives) if v is not None}
            finalized = [n for n, v in zip(names, next(replies)) if v is not None]
            if finalized:  # only after finalize-training: fetch the whole-pattern values of those patterns
                values = self.client.mget([keys.intrinsic(kind, n) for kind in INTRINSIC_KEYS for n in finalized])
                stats.intrinsics = _intrinsics(finalized, values)
        if symbols:
            pmf = seen.hash_fields(keys.symbols_pmf, symbols, next(replies))
            stats.pmf = {s: _int(v) for s, v in zip(symbols, pmf) if v is not None}
        if weight_symbols:
            freq = seen.hash_fields(keys.symbols_freq, weight_symbols, next(replies))
            stats.symbol_freq = {s: _int(v) for s, v in zip(weight_symbols, freq) if v is not None}
            affinity = {}
            for s in weight_symbols:
                fields = seen.hash_all(keys.affinity(s), next(replies))
                if fields:
                    affinity[s] = {_text(k): float(_text(v)) for k, v in fields.items()}
            stats.affinity = affinity
        return stats

    def pattern_info(self, kb_id: str, name: str) -> dict[str, Any] | None:
        """``{"frequency", "emotives", "metadata"}`` of a pattern, or None when Redis knows nothing of it."""
        keys = self.keys(kb_id)
        layout = self.layout
        pipe = self.client.pipeline(transaction=False)
        layout.queue_read(pipe, [layout.frequency(keys, name), layout.emotives(keys, name),
                                 layout.metadata(keys, name)])
        frequency, emotives, metadata = pipe.execute()[0]
        if frequency is None and emotives is None and metadata is None:
            return None
        return {
            "frequency": _int(frequency),
            "emotives": json.loads(_text(emotives)) if emotives is not None else [],
            "metadata": json.loads(_text(metadata)) if metadata is not None else {},
        }

    def symbol_affinity(self, kb_id: str, symbol: str) -> dict[str, float]:
        fields = self.client.hgetall(self.keys(kb_id).affinity(symbol))
        return {_text(k): float(_text(v)) for k, v in fields.items()}

    def affinities(self, kb_id: str) -> dict[str, dict[str, float]]:
        keys = self.keys(kb_id)
        prefix = keys.affinity("")
        found = sorted(self._scan(glob_escape(prefix) + "*"))
        pipe = self.client.pipeline(transaction=False)
        for key in found:
            pipe.hgetall(key)
        return {key[len(prefix):]: {_text(k): float(_text(v)) for k, v in fields.items()}
                for key, fields in zip(found, pipe.execute()) if fields}

    def symbol_stats(self, kb_id: str) -> dict[str, dict[str, Any]]:
        """``{symbol: {"name", "frequency", "pattern_member_frequency"}}`` (``/symbols/stats``)."""
        keys = self.keys(kb_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.symbols_freq)
        pipe.hgetall(keys.symbols_pmf)
        freq, pmf = pipe.execute()
        pmf = {_text(k): _int(v) for k, v in pmf.items()}
        return {s: {"name": s, "frequency": _int(v), "pattern_member_frequency": pmf.get(s, 0)}
                for s, v in sorted((_text(k), v) for k, v in freq.items())}

    def _scan(self, match: str) -> Iterator[str]:
        for key in self.client.scan_iter(match=match, count=_SCAN_COUNT):
            yield _text(key)


def redis_kb_for(client: redis.Redis, settings: Settings) -> RedisKB:
    """The deployment's ``RedisKB``, its layout claimed in Redis (a start with the other layout is refused)."""
    claim_layout(client, settings.redis_layout, hash_tag(client))
    return RedisKB(client, settings.service_name, log_bound=settings.log_bound_rows, layout=settings.redis_layout)


def _intrinsics(names: Sequence[str], values: Sequence[Any]) -> dict[str, PatternIntrinsics]:
    n = len(names)
    out = {}
    for i, name in enumerate(names):
        entropy, normalized, global_normalized, tf = (values[k * n + i] for k in range(len(INTRINSIC_KEYS)))
        if entropy is None or normalized is None or global_normalized is None or tf is None:
            continue
        out[name] = PatternIntrinsics(float(_text(entropy)), float(_text(normalized)),
                                      float(_text(global_normalized)), json.loads(_text(tf)))
    return out
