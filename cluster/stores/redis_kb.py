"""Per-KB statistics in Redis, in KATO's own key layout (spec §1.6–§1.8, §3.6).

Writes: ``learn_batch`` gives the same end state as learning the patterns one by one in order, in at most
four round trips whatever the batch size: (1) per distinct name a script doing KATO's ``SET frequency 1 NX``
and, when it wins, writing the new pattern's emotives/metadata in the same atomic step; (2, 3) WATCH + MGET
of the emotives/metadata of re-learned patterns that carry emotives or metadata; (4) one MULTI/EXEC with
every other write (aggregated HINCRBY/INCRBY; affinity increments stay one per learn and in order, so float
sums round exactly as sequential learns do). The re-learn read-modify-write is optimistic: a concurrent
learn of the same pattern makes EXEC fail and the batch is recomputed, so no update is lost. (Lua cannot
do the merge: cjson does not reproduce ``json.dumps``. WATCH is kept to those keys because Redis checks
a client's watched keys linearly, so watching every key of a large batch would be quadratic.)

Reads: ``corpus_stats`` fetches everything the metrics need in one pipelined round trip.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
import redis

from schema.learning import LearnedPattern, merge_metadata, trim_emotives
from schema.naming import kb_id_for
from schema.rules.metrics import CorpusStats, PatternIntrinsics

GLOBAL_TOTAL_SYMBOLS = "global:total_symbols_in_patterns_frequencies"
GLOBAL_PATTERN_FREQUENCIES = "global:total_pattern_frequencies"
GLOBAL_UNIQUE_PATTERNS = "global:total_unique_patterns"
INTRINSIC_KEYS = ("entropy", "normalized_entropy", "global_normalized_entropy", "tf_vector")
_GLOB_SPECIAL = frozenset("*?[]\\")
_SCAN_COUNT = 1000
# New vs existing, decided atomically (KATO's SET NX) together with the new pattern's emotives/metadata, so a
# concurrent re-learn can never read the pattern as existing before those keys hold the first learn's values.
_CREATE = """
if redis.call('set', KEYS[1], '1', 'NX') then
    redis.call('set', KEYS[2], ARGV[1])
    redis.call('set', KEYS[3], ARGV[2])
    return 1
end
return 0
"""
_DELETE_CHUNK = 500


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches itself literally in SCAN MATCH."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in text)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)  # int() reads str and bytes alike


class KBKeys:
    """Key names of one KB (every key starts with ``{kb_id}:``)."""

    def __init__(self, kb_id: str) -> None:
        self.kb_id = kb_id
        self.prefix = f"{kb_id}:"
        self.symbols_freq = f"{kb_id}:symbols:freq"
        self.symbols_pmf = f"{kb_id}:symbols:pmf"
        self.total_symbols = f"{kb_id}:{GLOBAL_TOTAL_SYMBOLS}"
        self.pattern_frequencies = f"{kb_id}:{GLOBAL_PATTERN_FREQUENCIES}"
        self.unique_patterns = f"{kb_id}:{GLOBAL_UNIQUE_PATTERNS}"

    def frequency(self, name: str) -> str:
        return f"{self.kb_id}:frequency:{name}"

    def emotives(self, name: str) -> str:
        return f"{self.kb_id}:emotives:{name}"

    def metadata(self, name: str) -> str:
        return f"{self.kb_id}:metadata:{name}"

    def affinity(self, symbol: str) -> str:
        return f"{self.kb_id}:affinity:{symbol}"

    def symbol_to_patterns(self, symbol: str) -> str:
        return f"{self.kb_id}:symbol_to_patterns:{symbol}"

    def intrinsic(self, kind: str, name: str) -> str:
        return f"{self.kb_id}:{kind}:{name}"

    def match_all(self) -> str:
        return glob_escape(self.prefix) + "*"


class RedisKB:
    def __init__(self, client: redis.Redis, service_name: str = "kato", symbol_to_patterns: bool = False) -> None:
        self.client = client
        self.service_name = service_name
        self.symbol_to_patterns = symbol_to_patterns
        self._create = client.register_script(_CREATE)

    def kb_id(self, node_id: str) -> str:
        return kb_id_for(node_id, self.service_name)

    # ------------------------------------------------------------------ writes
    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int) -> bool:
        """Record one learn; True if the pattern is new to the KB."""
        return self.learn_batch(kb_id, [pattern], persistence)[0]

    def learn_batch(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int) -> list[bool]:
        """Record the learns in order; element i is True iff learn i created its pattern."""
        if not patterns:
            return []
        keys = KBKeys(kb_id)
        first: dict[str, int] = {}
        for i, p in enumerate(patterns):
            first.setdefault(p.name, i)
        pipe = self.client.pipeline(transaction=False)
        for name, i in first.items():
            p = patterns[i]
            self._create(keys=[keys.frequency(name), keys.emotives(name), keys.metadata(name)],
                         args=[json.dumps(trim_emotives(p.emotives, persistence)),
                               json.dumps(merge_metadata({}, p.metadata))], client=pipe)
        won = {name: bool(ok) for name, ok in zip(first, pipe.execute())}
        new = [won[p.name] and first[p.name] == i for i, p in enumerate(patterns)]
        rewrites = list(dict.fromkeys(
            p.name for p, is_new in zip(patterns, new) if not is_new and (p.emotives or p.metadata)))
        while True:
            with self.client.pipeline(transaction=True) as tx:
                try:
                    stored: list[Any] = []
                    watched = [keys.emotives(n) for n in rewrites] + [keys.metadata(n) for n in rewrites]
                    if watched:
                        tx.watch(*watched)
                        stored = tx.mget(watched)
                    tx.multi()
                    self._queue_rewrites(tx, keys, patterns, new, rewrites, stored, persistence)
                    self._queue_counters(tx, keys, patterns, new)
                    tx.execute()
                    return new
                except redis.WatchError:
                    continue

    @staticmethod
    def _queue_rewrites(tx: Any, keys: KBKeys, patterns: Sequence[LearnedPattern], new: Sequence[bool],
                        rewrites: Sequence[str], stored: Sequence[Any], persistence: int) -> None:
        n = len(rewrites)
        emotives = {name: json.loads(_text(raw)) if raw is not None else []
                    for name, raw in zip(rewrites, stored[:n])}
        metadata = {name: json.loads(_text(raw)) if raw is not None else {}
                    for name, raw in zip(rewrites, stored[n:])}
        for p, is_new in zip(patterns, new):
            if not is_new and p.name in emotives and (p.emotives or p.metadata):
                emotives[p.name] = trim_emotives([*emotives[p.name], *p.emotives], persistence)
                metadata[p.name] = merge_metadata(metadata[p.name], p.metadata)
        for name in rewrites:
            tx.set(keys.emotives(name), json.dumps(emotives[name]))
            tx.set(keys.metadata(name), json.dumps(metadata[name]))

    def _queue_counters(self, tx: Any, keys: KBKeys, patterns: Sequence[LearnedPattern],
                        new: Sequence[bool]) -> None:
        relearns: Counter[str] = Counter()
        symbol_freq: Counter[str] = Counter()
        pmf: Counter[str] = Counter()
        members: dict[str, set[str]] = {}
        total_symbols = 0
        for p, is_new in zip(patterns, new):
            counts = p.symbol_counts
            symbol_freq.update({s: c * p.repeats for s, c in counts.items()})
            total_symbols += p.length * p.repeats
            if is_new:
                pmf.update(counts.keys())
                relearns[p.name] += p.repeats - 1
            else:
                relearns[p.name] += p.repeats
            if self.symbol_to_patterns:
                for s in counts:
                    members.setdefault(s, set()).add(p.name)
        n_new = sum(new)
        for name, times in relearns.items():
            if times:
                tx.incrby(keys.frequency(name), times)
        for s, c in symbol_freq.items():
            tx.hincrby(keys.symbols_freq, s, c)
        for s, c in pmf.items():
            tx.hincrby(keys.symbols_pmf, s, c)
        for s, names in members.items():
            tx.sadd(keys.symbol_to_patterns(s), *sorted(names))
        tx.incrby(keys.total_symbols, total_symbols)
        if n_new:
            tx.incrby(keys.pattern_frequencies, n_new)
            tx.incrby(keys.unique_patterns, n_new)
        for p in patterns:  # one increment per learn, in order: identical float rounding to sequential learns
            delta = p.affinity_delta if p.emotives else {}
            for s in dict.fromkeys(p.symbols) if delta else ():
                for emotive, value in delta.items():
                    tx.hincrbyfloat(keys.affinity(s), emotive, value)

    def write_intrinsics(self, kb_id: str, intrinsics: Mapping[str, PatternIntrinsics]) -> None:
        """Store finalize-training's per-pattern values (spec §3.7)."""
        keys = KBKeys(kb_id)
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
        for key in self._scan(KBKeys(kb_id).match_all()):
            batch.append(key)
            if len(batch) >= _DELETE_CHUNK:
                deleted += self.client.delete(*batch)
                batch = []
        if batch:
            deleted += self.client.delete(*batch)
        return deleted

    # ------------------------------------------------------------------- reads
    def corpus_stats(self, kb_id: str, names: Iterable[str], symbols: Iterable[str],
                     weight_symbols: Iterable[str] = ()) -> CorpusStats:
        """Everything the prediction metrics read, in one pipelined round trip (a second one only for
        patterns with finalize-training values)."""
        keys = KBKeys(kb_id)
        names = list(dict.fromkeys(names))
        symbols = list(dict.fromkeys(symbols))
        weight_symbols = list(dict.fromkeys(weight_symbols))
        pipe = self.client.pipeline(transaction=False)
        pipe.hlen(keys.symbols_freq)
        pipe.mget([keys.total_symbols, keys.unique_patterns, keys.pattern_frequencies])
        if names:
            pipe.mget([keys.frequency(n) for n in names])
            pipe.mget([keys.emotives(n) for n in names])
            pipe.mget([keys.intrinsic(INTRINSIC_KEYS[0], n) for n in names])
        if symbols:
            pipe.hmget(keys.symbols_pmf, symbols)
        if weight_symbols:
            pipe.hmget(keys.symbols_freq, weight_symbols)
            for s in weight_symbols:
                pipe.hgetall(keys.affinity(s))
        replies: Iterator[Any] = iter(pipe.execute())
        stats = CorpusStats(total_symbols=int(next(replies)))
        _, unique, frequencies = next(replies)
        stats.total_unique_patterns = _int(unique)
        stats.total_pattern_frequencies = _int(frequencies)
        if names:
            stats.frequencies = {n: _int(v) for n, v in zip(names, next(replies)) if v is not None}
            stats.emotives = {n: orjson.loads(v) for n, v in zip(names, next(replies)) if v is not None}
            finalized = [n for n, v in zip(names, next(replies)) if v is not None]
            if finalized:  # only after finalize-training: fetch the whole-pattern values of those patterns
                values = self.client.mget([keys.intrinsic(kind, n) for kind in INTRINSIC_KEYS for n in finalized])
                stats.intrinsics = _intrinsics(finalized, values)
        if symbols:
            stats.pmf = {s: _int(v) for s, v in zip(symbols, next(replies)) if v is not None}
        if weight_symbols:
            stats.symbol_freq = {s: _int(v) for s, v in zip(weight_symbols, next(replies)) if v is not None}
            affinity = {}
            for s in weight_symbols:
                fields = next(replies)
                if fields:
                    affinity[s] = {_text(k): float(_text(v)) for k, v in fields.items()}
            stats.affinity = affinity
        return stats

    def pattern_info(self, kb_id: str, name: str) -> dict[str, Any] | None:
        """``{"frequency", "emotives", "metadata"}`` of a pattern, or None when Redis knows nothing of it."""
        keys = KBKeys(kb_id)
        frequency, emotives, metadata = self.client.mget(
            [keys.frequency(name), keys.emotives(name), keys.metadata(name)])
        if frequency is None and emotives is None and metadata is None:
            return None
        return {
            "frequency": _int(frequency),
            "emotives": json.loads(_text(emotives)) if emotives is not None else [],
            "metadata": json.loads(_text(metadata)) if metadata is not None else {},
        }

    def symbol_affinity(self, kb_id: str, symbol: str) -> dict[str, float]:
        fields = self.client.hgetall(KBKeys(kb_id).affinity(symbol))
        return {_text(k): float(_text(v)) for k, v in fields.items()}

    def affinities(self, kb_id: str) -> dict[str, dict[str, float]]:
        keys = KBKeys(kb_id)
        prefix = keys.affinity("")
        found = sorted(self._scan(glob_escape(prefix) + "*"))
        pipe = self.client.pipeline(transaction=False)
        for key in found:
            pipe.hgetall(key)
        return {key[len(prefix):]: {_text(k): float(_text(v)) for k, v in fields.items()}
                for key, fields in zip(found, pipe.execute()) if fields}

    def symbol_stats(self, kb_id: str) -> dict[str, dict[str, Any]]:
        """``{symbol: {"name", "frequency", "pattern_member_frequency"}}`` (``/symbols/stats``)."""
        keys = KBKeys(kb_id)
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
