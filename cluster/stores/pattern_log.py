"""The write-ahead log of new patterns: Redis streams on the AOF-``always`` Redis, one per (KB, shard).

A learn is acknowledged once its statistics and the rows of the patterns it creates are durable in one atomic
Redis step (``cluster.stores.redis_kb.RedisKB.learn_batch`` appends here in the same script that updates the
statistics, so Redis writes and fsyncs them together) and the owning shard's index holds the rows. The shard's
flusher (``actors.stored_shard``) later moves the log to ClickHouse in batches and trims what it moved; a shard
that starts loads its range from ClickHouse and replays what is still in its logs.

Keys (outside the KB's ``{kb_id}:*`` namespace, which KATO's tools and ``import-kato``/``export`` read as the
KB's statistics; a transient log is not part of them):

- ``kato:wal:{service}:{kb_id}:{shard_id}``: the stream; each entry holds an Arrow IPC table of pattern rows
  (``schema.pattern_rows.PATTERN_SCHEMA``) in field ``rows`` and their count in ``n``;
- ``kato:wal:{service}:{kb_id}:{shard_id}:rows``: how many rows that stream holds (the bound a learn is refused
  at);
- ``kato:wal_kbs:{service}:{shard_id}``: the KBs that shard has a log for (so a restarted shard finds them).

``service`` is the service's namespace (``Settings.namespace``): two services sharing a Redis (or a test beside a
service) never read or trim each other's logs.

Clear-all drops a KB's logs on every shard together with its patterns (``actors.stored_shard.drop_kb``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import pyarrow as pa
import redis

from cluster.stores.key_space import hash_tag
from schema.pattern_rows import PATTERN_SCHEMA

DEFAULT_NAMESPACE = "kato"
ROWS_FIELD = b"rows"

# Trim what was flushed and lower the row count by as much, atomically (a crash between the two cannot skew it).
_TRIM = """
local removed = 0
for i = 2, #ARGV do
    removed = removed + redis.call('xdel', KEYS[1], ARGV[i])
end
local left = redis.call('decrby', KEYS[2], ARGV[1])
if left <= 0 and redis.call('xlen', KEYS[1]) == 0 then
    redis.call('del', KEYS[2])
end
return removed
"""


@dataclass(frozen=True)
class LogKeys:
    """The key names of one service's logs (``tag``: the deployment's hash tag, ``cluster.stores.key_space``)."""

    namespace: str = DEFAULT_NAMESPACE
    tag: str = ""

    def stream(self, kb_id: str, shard_id: int) -> str:
        return f"{self.tag}kato:wal:{self.namespace}:{kb_id}:{shard_id}"

    def rows(self, kb_id: str, shard_id: int) -> str:
        return f"{self.tag}kato:wal:{self.namespace}:{kb_id}:{shard_id}:rows"

    def registry(self, shard_id: int) -> str:
        return f"{self.tag}kato:wal_kbs:{self.namespace}:{shard_id}"

    def on(self, client: Any) -> LogKeys:
        """These names in ``client``'s deployment."""
        return replace(self, tag=hash_tag(client))


def encode_rows(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, PATTERN_SCHEMA) as writer:
        writer.write_table(table if table.schema.equals(PATTERN_SCHEMA) else table.cast(PATTERN_SCHEMA))
    return sink.getvalue().to_pybytes()


def decode_rows(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def log_appends(keys: LogKeys, kb_id: str, table: pa.Table, owner: np.ndarray, names: Collection[str]
                ) -> list[LogAppend]:
    """The appends that log the rows of ``table`` named in ``names``, one per owning shard (``owner[i]`` owns
    row i)."""
    wanted = set(names)
    chosen = np.fromiter((name in wanted for name in table.column("name").to_pylist()), bool, table.num_rows)
    appends = []
    for shard_id in np.unique(owner[chosen]).tolist():
        mask = chosen & (owner == shard_id)
        rows = table if mask.all() else table.filter(pa.array(mask))  # a single learn: no copy
        appends.append(LogAppend(keys.stream(kb_id, shard_id), keys.rows(kb_id, shard_id), encode_rows(rows),
                                 rows.num_rows))
    return appends


@dataclass(frozen=True)
class LogAppend:
    """Where a batch's new patterns go: per shard, their log, row counter and encoded rows."""

    stream: str
    counter: str
    blob: bytes
    rows: int


@dataclass(frozen=True)
class LogEntry:
    entry_id: str
    rows: pa.Table


@dataclass(frozen=True)
class LogDepth:
    rows: int = 0
    entries: int = 0
    oldest_ms: int | None = None  # the Redis time (ms) of the oldest unflushed entry

    def lag_seconds(self, now_ms: int) -> float:
        return 0.0 if self.oldest_ms is None else max(0.0, (now_ms - self.oldest_ms) / 1000.0)


class PatternLog:
    """Reading and trimming a shard's logs. The client must not decode responses (entries are binary)."""

    def __init__(self, client: redis.Redis, keys: LogKeys | None = None) -> None:
        self.client = client
        self.keys = (keys or LogKeys()).on(client)
        self._trim = client.register_script(_TRIM)

    @classmethod
    def from_url(cls, url: str, namespace: str = DEFAULT_NAMESPACE) -> PatternLog:
        from cluster.stores.redis_client import connect

        return cls(connect(url, decode=False), LogKeys(namespace))

    def kbs(self, shard_id: int) -> list[str]:
        return sorted(_text(kb) for kb in self.client.smembers(self.keys.registry(shard_id)))

    def entries(self, kb_id: str, shard_id: int, count: int | None = None, after: str | None = None
                ) -> list[LogEntry]:
        """The oldest ``count`` entries (all by default) of one log after entry ``after``, oldest first."""
        start = f"({after}" if after else "-"
        raw = cast(list[tuple[bytes, dict[bytes, bytes]]],
                   self.client.xrange(self.keys.stream(kb_id, shard_id), min=start, count=count))
        return [LogEntry(_text(entry_id), decode_rows(fields[ROWS_FIELD])) for entry_id, fields in raw]

    def batch(self, shard_id: int, max_rows: int, read: int = 64) -> list[tuple[str, list[LogEntry]]]:
        """The oldest entries of the shard's logs, KB by KB, until about ``max_rows`` rows (at least one entry)."""
        found: list[tuple[str, list[LogEntry]]] = []
        rows = 0
        for kb_id in self.kbs(shard_id):
            taken: list[LogEntry] = []
            while rows < max_rows:
                more = self.entries(kb_id, shard_id, read, taken[-1].entry_id if taken else None)
                for entry in more:
                    if rows >= max_rows and (taken or found):
                        break
                    taken.append(entry)
                    rows += entry.rows.num_rows
                if len(more) < read:
                    break
            if taken:
                found.append((kb_id, taken))
            if rows >= max_rows:
                break
        return found

    def pending(self, shard_id: int, count: int | None = None) -> Iterator[tuple[str, list[LogEntry]]]:
        """Every KB of the shard with entries in its log, and those entries (at most ``count`` per KB)."""
        for kb_id in self.kbs(shard_id):
            found = self.entries(kb_id, shard_id, count)
            if found:
                yield kb_id, found

    def append(self, kb_id: str, shard_id: int, rows: pa.Table) -> None:
        """Log rows on another shard (a moving range's rows, copied to its new owner); registered first."""
        self.client.sadd(self.keys.registry(shard_id), kb_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.keys.stream(kb_id, shard_id), {ROWS_FIELD: encode_rows(rows), b"n": rows.num_rows})
        pipe.incrby(self.keys.rows(kb_id, shard_id), rows.num_rows)
        pipe.execute()

    def trim(self, kb_id: str, shard_id: int, entries: list[LogEntry]) -> int:
        """Drop these entries (flushed to the store) and count their rows out; returns how many were dropped."""
        if not entries:
            return 0
        rows = sum(entry.rows.num_rows for entry in entries)
        return int(self._trim(keys=[self.keys.stream(kb_id, shard_id), self.keys.rows(kb_id, shard_id)],
                              args=[rows, *(entry.entry_id for entry in entries)]))

    def depth(self, shard_id: int) -> LogDepth:
        """Rows and entries still in the shard's logs, and when the oldest of them was written."""
        kbs = self.kbs(shard_id)
        if not kbs:
            return LogDepth()
        pipe = self.client.pipeline(transaction=False)
        for kb_id in kbs:
            pipe.get(self.keys.rows(kb_id, shard_id))
            pipe.xlen(self.keys.stream(kb_id, shard_id))
            pipe.xrange(self.keys.stream(kb_id, shard_id), count=1)
        replies = pipe.execute()
        rows = sum(int(replies[i] or 0) for i in range(0, len(replies), 3))
        entries = sum(int(replies[i]) for i in range(1, len(replies), 3))
        firsts = [int(_text(r[0][0]).split("-")[0]) for r in replies[2::3] if r]
        return LogDepth(rows, entries, min(firsts) if firsts else None)

    def drop(self, kb_id: str, shard_id: int) -> None:
        """Forget one KB's log on this shard (clear-all)."""
        pipe = self.client.pipeline(transaction=False)  # the registry sits apart from the KB's keys
        pipe.delete(self.keys.stream(kb_id, shard_id), self.keys.rows(kb_id, shard_id))
        pipe.srem(self.keys.registry(shard_id), kb_id)
        pipe.execute()

    def drop_shard(self, shard_id: int) -> int:
        """Forget every log of a shard that is going away (a merge or an aborted split left it without a
        range; the cut-over flushed what it held); returns how many KB logs were dropped."""
        kbs = self.kbs(shard_id)
        for kb_id in kbs:
            self.drop(kb_id, shard_id)
        self.client.delete(self.keys.registry(shard_id))
        return len(kbs)

    def now_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
