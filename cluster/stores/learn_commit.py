"""One batch of learns committed to Redis in one atomic, fsync'd step: KATO's statistics and the log of the
patterns it creates (spec §1.6–§1.8; the log is ``cluster.stores.pattern_log``).

The end state equals learning the patterns one by one in order. How:

1. Read, in one round trip, what the batch depends on: whether each pattern exists (its frequency key), and
   the stored emotives/metadata of the patterns whose re-learn merges new ones into them. A single learn skips
   the read at first: it is planned as a new pattern, and read only if the script finds the pattern exists.
2. Plan in Python: replay the batch in order over what was read (new vs existing, KATO's emotive trimming
   and metadata union, aggregated counters; affinity increments stay one per learn and in order, so float sums
   round exactly as sequential learns do). ``json.dumps`` writes the JSON, as KATO does.
3. Run the plan as one Lua script: it first checks that what was read still holds (compare-and-set), then
   applies every write and appends the new patterns' rows to their shards' logs. A concurrent learn that got
   there first makes the check fail; the batch is read and planned again. Nothing is written unless all of it
   is, and Redis with ``appendfsync always`` writes the whole script to its AOF and fsyncs it before answering
   (concurrent learns from other clients share that fsync: Redis fsyncs once per event-loop pass). In the same
   step, every statistics value it overwrites is kept for the observes whose predictions are still pending
   (``cluster.stores.kb_overlay``), so they are computed over the KB as it was without delaying the learn.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import redis

from cluster.stores.kb_keys import KBKeys
from cluster.stores.kb_overlay import NEXT_OVERLAY_PREFIX, OVERLAY_PREFIX, next_overlay_key
from cluster.stores.key_space import hash_tag
from cluster.stores.pattern_layout import PatternLayout, Slot
from cluster.stores.pattern_log import LogAppend
from cluster.stores.sessions import DEFAULT_TTL_SECONDS, kb_pending_key
from schema.errors import ServiceUnavailable, StaleShardMap
from schema.learning import LearnedPattern, merge_metadata, trim_emotives

_COMMIT = """
local plan = cjson.decode(ARGV[1])
if plan.map then
    local raw = redis.call('get', plan.map[1])
    if raw then
        local m = cjson.decode(raw)
        if m.version ~= plan.map[2] then return 4 end
        if m.frozen_until_ms > 0 then
            local t = redis.call('time')
            if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) < m.frozen_until_ms then
                for _, b in ipairs(plan.map[3]) do
                    for _, r in ipairs(m.moving) do
                        if b >= r[1] and b <= r[2] then return 3 end
                    end
                end
            end
        end
    end
end
for _, check in ipairs(plan.exists) do
    local found
    if check[3] then
        found = redis.call('hexists', check[1], ARGV[check[3]])
    else
        found = redis.call('exists', check[1])
    end
    if found ~= check[2] then return 0 end
end
for _, check in ipairs(plan.equal) do
    local value
    if check[3] then value = redis.call('hget', check[1], ARGV[check[3]]) else value = redis.call('get', check[1]) end
    if value ~= check[2] then return 0 end
end
for _, cap in ipairs(plan.caps) do
    if tonumber(redis.call('get', cap[1]) or '0') + cap[3] > cap[2] then return -1 end
end
for _, guard in ipairs(plan.guards) do
    if guard[1] == 'not_member' and redis.call('sismember', guard[2], guard[3]) == 1 then return 2 end
    if guard[1] == 'field_equal' and redis.call('hget', guard[2], guard[3]) ~= guard[4] then return 2 end
end
local overlays = {}
if plan.snap > 0 then
    if plan.own then
        if redis.call('hget', plan.own[1], '@record') ~= plan.own[2] then
            redis.call('del', plan.own[1])
            redis.call('hset', plan.own[1], '@record', plan.own[2])
            redis.call('expire', plan.own[1], plan.own[3])
        end
        redis.call('sadd', plan.overlay[1], plan.own[4])
    end
    for _, sid in ipairs(redis.call('smembers', plan.overlay[1])) do
        for p = 2, 3 do
            local key = plan.overlay[p] .. sid
            if redis.call('exists', key) == 1 then table.insert(overlays, key) end
        end
    end
end
local news = plan.news or {}
if #overlays > 0 then
    for i = 1, #news, 2 do
        local old = redis.call('get', news[i])
        local value = old and ('=' .. old) or '-'
        for _, key in ipairs(overlays) do redis.call('hsetnx', key, 's' .. news[i], value) end
    end
    for _, born in ipairs(plan.born or {}) do
        for _, key in ipairs(overlays) do redis.call('hsetnx', key, 's' .. born, '-') end
    end
end
for i = 1, #news, 4000 do
    redis.call('mset', unpack(news, i, math.min(i + 3999, #news)))
end
for _, h in ipairs(plan.hnews or {}) do
    local args = {'hset', h[1]}
    for j = 2, #h, 2 do
        args[#args + 1] = ARGV[h[j]]
        args[#args + 1] = h[j + 1]
    end
    redis.call(unpack(args))
end
for n, op in ipairs(plan.ops) do
    for i = 2, #op do
        if type(op[i]) == 'table' then op[i] = ARGV[op[i][1]] end
    end
    if #overlays > 0 and n <= plan.snap then
        local field, old = nil, nil
        if op[1] == 'SET' or op[1] == 'INCRBY' then
            field, old = 's' .. op[2], redis.call('get', op[2])
        elseif op[1] == 'HINCRBY' or op[1] == 'HINCRBYFLOAT' or op[1] == 'HSET' then
            field, old = 'h' .. #op[2] .. ':' .. op[2] .. op[3], redis.call('hget', op[2], op[3])
        end
        if field then
            local value = old and ('=' .. old) or '-'
            for _, key in ipairs(overlays) do redis.call('hsetnx', key, field, value) end
        end
    end
    redis.call(unpack(op))
end
return 1
"""
_MAX_ATTEMPTS = 50
_FROZEN_PAUSE = 0.005  # a write into a moving range waits this long between tries during a cut-over
_FROZEN_WAIT = 10.0  # and at most this long in all (a cut-over's freeze lasts a few seconds at most)


@dataclass(frozen=True)
class MapGuard:
    """The shard-map version a batch was routed by, and the home buckets of its new rows: the commit fails as
    ``StaleShardMap`` if the map moved on, and waits while those buckets are frozen for a cut-over."""

    key: str
    version: int
    buckets: tuple[int, ...]


class LogFull(ServiceUnavailable):
    """The write-ahead log of this KB on a shard is at its bound (the store is behind): retry later."""

    retry_after = 5


RowsFor = Callable[[set[str]], list[LogAppend]]
"""The log appends for the patterns of the batch that are new (given their names)."""


class GuardFailed(Exception):
    """The batch's guard no longer holds (its batch was applied already, or its load moved on)."""


@dataclass(frozen=True)
class Guard:
    """A condition the batch is applied under, and what records that it was, in the same atomic step: a batch id
    not applied yet (``not_member``), or a load's progress still at what the caller read (``field_equal``)."""

    checks: tuple[tuple[Any, ...], ...]
    ops: tuple[tuple[Any, ...], ...]

    @classmethod
    def once(cls, set_key: str, batch_id: str) -> Guard:
        return cls((("not_member", set_key, batch_id),), (("SADD", set_key, batch_id),))

    @classmethod
    def progress(cls, hash_key: str, load_id: str, expected: int | None, done: int) -> Guard:
        return cls((("field_equal", hash_key, load_id, False if expected is None else str(expected)),),
                   (("HSET", hash_key, load_id, str(done)),))


@dataclass
class _Pattern:
    """What the plan knows of one pattern of the batch as it replays the learns in order."""

    existed: bool
    exists: bool
    emotives: list[dict[str, float]] = field(default_factory=list)
    metadata: dict[str, list[str]] = field(default_factory=dict)
    stored_emotives: str | None = None
    stored_metadata: str | None = None
    frequency: int = 0
    rewrite: bool = False


class LearnCommit:
    def __init__(self, client: redis.Redis, symbol_to_patterns: bool = False, log_bound: int = 1_000_000,
                 layout: PatternLayout | None = None) -> None:
        self.client = client
        self.layout = layout or PatternLayout()
        self.symbol_to_patterns = symbol_to_patterns
        self.log_bound = log_bound
        self.tag = hash_tag(client)
        self._script = client.register_script(_COMMIT)

    def commit(self, kb_id: str, patterns: Sequence[LearnedPattern], persistence: int,
               rows_for: RowsFor | None = None, registrations: Sequence[tuple[str, str]] = (),
               guard: Guard | None = None, map_guard: MapGuard | None = None,
               view: tuple[str, str] | None = None) -> list[bool]:
        """Apply the learns in order; element i is True iff learn i created its pattern. ``registrations`` are
        ``(set key, member)`` additions made in the same atomic step, ahead of its log appends;
        the batch is applied only while ``guard`` holds (else ``GuardFailed``), and records it in the same step.
        The values it overwrites are kept in the overlay of every stored pending observe of the KB and of
        ``view`` (session id, record id: the learning session's own observe, stored after the learn)."""
        keys = KBKeys(kb_id, self.tag)
        conflicts = 0
        frozen_until = time.monotonic() + _FROZEN_WAIT
        optimistic = len(patterns) == 1
        while conflicts < _MAX_ATTEMPTS:
            state = self._assumed_new(patterns) if optimistic else self._read(keys, patterns)
            new = self._replay(state, patterns, persistence)
            plan = self._plan(keys, state, patterns, new, persistence)
            plan["snap"] = len(plan["ops"])  # the statistics writes: pending observes keep what they overwrite
            tag = self.tag
            plan["overlay"] = [kb_pending_key(kb_id, tag), tag + OVERLAY_PREFIX, tag + NEXT_OVERLAY_PREFIX]
            if view is not None:  # the session's save moves this overlay into place and sets its TTL
                plan["own"] = [next_overlay_key(view[0], tag), view[1], DEFAULT_TTL_SECONDS, view[0]]
            if guard is not None:
                plan["guards"] = [list(check) for check in guard.checks]
                plan["ops"].extend(list(op) for op in guard.ops)
            if map_guard is not None:
                plan["map"] = [map_guard.key, map_guard.version, list(map_guard.buckets)]
            appends = rows_for({p.name for p, is_new in zip(patterns, new) if is_new}) if rows_for else []
            outcome = self._run(plan, appends, keys.total_symbols, plan.pop("fields"), registrations)
            if outcome == 1:
                return new
            if outcome == 0 and optimistic:  # the pattern exists: read it, and plan again
                optimistic = False
                continue
            if outcome == 2:
                raise GuardFailed()
            if outcome == 3:
                if time.monotonic() > frozen_until:
                    raise ServiceUnavailable("a reshard's cut-over holds this range; retry")
                time.sleep(_FROZEN_PAUSE)
                continue
            conflicts += 1
            if outcome == 4:
                raise StaleShardMap("the shard map changed: route the learn again")
            if outcome == -1:
                raise LogFull("the write-ahead log is full: the pattern store is behind or unreachable")
        raise ServiceUnavailable("too many concurrent learns of the same patterns; retry")

    def append(self, appends: Sequence[LogAppend], registrations: Sequence[tuple[str, str]] = ()) -> None:
        """Log rows with no statistics to change (registrations with them, as ``commit`` does)."""
        if appends and self._run({"exists": [], "equal": [], "ops": []}, list(appends), appends[0].stream,
                                 registrations=registrations) == -1:
            raise LogFull("the write-ahead log is full: the pattern store is behind or unreachable")

    @staticmethod
    def _assumed_new(patterns: Sequence[LearnedPattern]) -> dict[str, _Pattern]:
        """The state ``_read`` finds when no pattern of the batch exists yet (the script checks it does not)."""
        return {name: _Pattern(existed=False, exists=False) for name in dict.fromkeys(p.name for p in patterns)}

    def _read(self, keys: KBKeys, patterns: Sequence[LearnedPattern]) -> dict[str, _Pattern]:
        names = list(dict.fromkeys(p.name for p in patterns))
        merging = list(dict.fromkeys(p.name for p in patterns if p.emotives or p.metadata))
        pipe = self.client.pipeline(transaction=False)
        layout = self.layout
        layout.queue_read(pipe, [layout.frequency(keys, n) for n in names])
        if merging:
            layout.queue_read(pipe, [layout.emotives(keys, n) for n in merging]
                              + [layout.metadata(keys, n) for n in merging])
        replies = pipe.execute()
        state = {n: _Pattern(existed=v is not None, exists=v is not None) for n, v in zip(names, replies[0])}
        if merging:
            stored = replies[1]
            for i, name in enumerate(merging):
                p = state[name]
                p.stored_emotives, p.stored_metadata = _text(stored[i]), _text(stored[len(merging) + i])
                p.emotives = json.loads(p.stored_emotives) if p.stored_emotives is not None else []
                p.metadata = json.loads(p.stored_metadata) if p.stored_metadata is not None else {}
        return state

    @staticmethod
    def _replay(state: dict[str, _Pattern], patterns: Sequence[LearnedPattern], persistence: int) -> list[bool]:
        new = []
        for p in patterns:
            s = state[p.name]
            new.append(not s.exists)
            s.frequency += p.repeats
            if not s.exists:
                s.exists = True
                s.emotives = trim_emotives(p.emotives, persistence)
                s.metadata = merge_metadata({}, p.metadata)
            elif p.emotives or p.metadata:
                s.emotives = trim_emotives([*s.emotives, *p.emotives], persistence)
                s.metadata = merge_metadata(s.metadata, p.metadata)
                s.rewrite = True
        return new

    def _plan(self, keys: KBKeys, state: dict[str, _Pattern], patterns: Sequence[LearnedPattern], new: list[bool],
              persistence: int) -> dict[str, Any]:
        """The script's plan; ``fields`` are the hash fields it names (binary, so passed as ARGV[2…], and named
        in the plan by their ARGV index)."""
        layout = self.layout
        slots = _Slots()
        ops: list[list[Any]] = []
        exists, equal = [], []
        for name, s in state.items():
            frequency = layout.frequency(keys, name)
            exists.append(slots.check(frequency, int(s.existed)))
            if not s.existed:
                slots.create(keys, name, frequency, str(s.frequency))
                if layout.writes_empty or s.emotives:
                    slots.create(keys, name, layout.emotives(keys, name), _json(s.emotives, "[]"))
                if layout.writes_empty or s.metadata:
                    slots.create(keys, name, layout.metadata(keys, name), _json(s.metadata, "{}"))
                continue
            ops.append(slots.op("INCRBY", frequency, s.frequency))
            if s.rewrite:
                for slot, stored, value in ((layout.emotives(keys, name), s.stored_emotives, s.emotives),
                                            (layout.metadata(keys, name), s.stored_metadata, s.metadata)):
                    equal.append(slots.check(slot, stored if stored is not None else False))
                    ops.append(slots.op("SET", slot, json.dumps(value)))
        ops.extend(self._counter_ops(keys, patterns, new))
        return {"exists": exists, "equal": equal, "ops": ops, "news": slots.news, "hnews": list(slots.hnews.values()),
                "born": slots.born, "fields": slots.fields}

    def _counter_ops(self, keys: KBKeys, patterns: Sequence[LearnedPattern], new: list[bool]) -> list[list[Any]]:
        once = [p for p in patterns if p.repeats == 1]  # counted in one pass over all their symbols
        symbol_freq: Counter[str] = Counter(chain.from_iterable(p.symbols for p in once))
        for p in patterns:
            if p.repeats > 1:
                symbol_freq.update({s: c * p.repeats for s, c in p.symbol_counts.items()})
        pmf: Counter[str] = Counter(chain.from_iterable(p.symbol_counts for p, is_new in zip(patterns, new)
                                                        if is_new))
        total_symbols = sum(p.length * p.repeats for p in patterns)
        members: dict[str, set[str]] = {}
        for p in patterns if self.symbol_to_patterns else ():
            for s in p.symbol_counts:
                members.setdefault(s, set()).add(p.name)
        ops: list[list[Any]] = [["HINCRBY", keys.symbols_freq, s, c] for s, c in symbol_freq.items()]
        ops += [["HINCRBY", keys.symbols_pmf, s, c] for s, c in pmf.items()]
        ops += [["SADD", keys.symbol_to_patterns(s), *sorted(names)] for s, names in members.items()]
        ops.append(["INCRBY", keys.total_symbols, total_symbols])
        if any(new):
            ops.append(["INCRBY", keys.pattern_frequencies, sum(new)])
            ops.append(["INCRBY", keys.unique_patterns, sum(new)])
        for p in patterns:  # one increment per learn, in order: identical float rounding to sequential learns
            delta = p.affinity_delta if p.emotives else {}
            for s in dict.fromkeys(p.symbols) if delta else ():
                ops += [["HINCRBYFLOAT", keys.affinity(s), emotive, repr(value)] for emotive, value in delta.items()]
        return ops

    def _run(self, plan: dict[str, Any], appends: Sequence[LogAppend], route: str, fields: Sequence[bytes] = (),
             registrations: Sequence[tuple[str, str]] = ()) -> int:
        """Run the plan; ``route`` is one of its keys: it names the script's slot, where a Redis Cluster runs it
        (every key of the plan shares that slot, the ``registrations`` too: ``cluster.stores.key_space``)."""
        plan["caps"] = [[a.counter, self.log_bound, a.rows] for a in appends]
        plan.setdefault("guards", [])
        plan.setdefault("snap", 0)
        if appends:
            plan["ops"].extend(["SADD", set_key, member] for set_key, member in registrations)
        first_blob = 2 + len(fields)
        for i, a in enumerate(appends):
            plan["ops"].append(["XADD", a.stream, "*", "rows", [first_blob + i], "n", a.rows])
            plan["ops"].append(["INCRBY", a.counter, a.rows])
        return int(self._script(keys=[route], args=[json.dumps(plan), *fields, *(a.blob for a in appends)]))


class _Slots:
    """The plan's references to values (``cluster.stores.pattern_layout.Slot``): string keys by name, hash fields
    by the ARGV index of their field."""

    def __init__(self) -> None:
        self.fields: list[bytes] = []
        self.news: list[str] = []  # key, value, ...: new patterns' string keys, set in a few MSETs
        self.hnews: dict[str, list[Any]] = {}  # hash key -> [key, field ref, value, ...]: new patterns' fields
        self.born: list[str] = []  # KATO's frequency key of each new pattern kept in hashes (for the overlays)

    def _ref(self, field: bytes) -> int:
        self.fields.append(field)
        return len(self.fields) + 1

    def check(self, slot: Slot, expected: Any) -> list[Any]:
        return [slot.key, expected] if slot.field is None else [slot.key, expected, self._ref(slot.field)]

    def op(self, command: str, slot: Slot, value: Any) -> list[Any]:
        if slot.field is None:
            return [command, slot.key, value]
        return ["HINCRBY" if command == "INCRBY" else "HSET", slot.key, [self._ref(slot.field)], value]

    def create(self, keys: KBKeys, name: str, slot: Slot, value: str) -> None:
        if slot.field is None:
            self.news += [slot.key, value]
            return
        if not self.born or self.born[-1] != keys.frequency(name):
            self.born.append(keys.frequency(name))
        self.hnews.setdefault(slot.key, [slot.key]).extend((self._ref(slot.field), value))


def _json(value: Any, empty: str) -> str:
    """``json.dumps(value)``; an empty list or dict (most patterns' emotives and metadata) without the encoder."""
    return json.dumps(value) if value else empty


def _text(value: Any) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value
