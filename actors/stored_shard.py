"""A shard bound to its pattern store and its write-ahead logs. Plain class; ``actors.ray_shard`` wraps it.

- ``load``: the shard's bucket range from the store, then every row still in its logs (read-your-writes after
  a restart: a learn acknowledged before the crash is in one or the other).
- ``catch_up``: every read (query, get, export, count, stats) first indexes what learns committed to the shard's
  logs since it last looked (one ``XRANGE`` after a cursor per KB): a learn is served by the next read wherever
  it comes from, without the learn waiting for the shard. ``index_table`` indexes rows handed over directly
  (an import, a reshard's copy); both are stored later by the flusher.
- ``flush``: the logs to the store in one insert (rows the store already has are left out, so a flush repeated
  after a crash between the insert and the trim never duplicates a row), then the flushed entries are trimmed.
  A background thread flushes every ``interval`` seconds, or as soon as ``max_rows`` rows wait; an insert
  that fails (the store is down) is retried, the log meanwhile grows up to its bound (then learns get 503).
- Reshards (``serve_app.resharder``): ``export_range`` / ``import_rows`` copy a moving range's rows to its new
  owner; while the move runs, ``flush`` also copies the moving rows it flushes into the new owner's log (so it
  catches up on learns made meanwhile); after the cut-over ``finish_move`` drops what was given away. Queries
  name their map version and are answered for that version's range (``actors.ranges``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from actors.process_memory import release_arrow_pool, trim_heap
from actors.ranges import ShardRanges
from actors.shard import LocalTop, Shard, ShardStats
from cluster.stores.clickhouse import PatternStore
from cluster.stores.pattern_log import LogEntry, PatternLog
from schema.pattern_rows import INDEX_SCHEMA, PATTERN_SCHEMA
from schema.placement import ShardMap
from schema.rules.query import QueryOptions

Hook = Callable[[str], None]


@dataclass(frozen=True)
class FlushPolicy:
    interval: float = 1.0  # seconds between flushes of whatever waits
    max_rows: int = 20_000  # flush early once this many rows wait; also the most rows read per log per flush
    retry_seconds: float = 1.0  # after a failed flush
    release_seconds: float = 30.0  # while flushes go on, at most this long between returns of freed memory


@dataclass
class FlushState:
    flushes: int = 0
    inserts: int = 0
    rows_flushed: int = 0
    last_error: str | None = None
    last_flush_at: float | None = None
    waiting_rows: int = 0  # indexed since the last flush (an estimate of what waits; the log is the truth)


@dataclass
class StoredShard:
    shard: Shard
    store: PatternStore | None = None
    log: PatternLog | None = None
    policy: FlushPolicy = field(default_factory=FlushPolicy)
    crash_at: Hook | None = None  # fault injection for tests: called with each flush step's name
    ranges: ShardRanges | None = None  # default: the shard's own range, no reshards
    shared_store: bool = False  # every shard reads and writes the same store (a server, or one process's chdb)

    def __post_init__(self) -> None:
        if self.ranges is None:
            self.ranges = ShardRanges(self.shard.shard_id, self.shard.bucket_lo, self.shard.bucket_hi)
        self.state = FlushState()
        self._forwarded: dict[str, str] = {}  # per KB, the last log entry whose moving rows were forwarded
        self._tailed: dict[str, str] = {}  # per KB, the last log entry indexed (every older one is too)
        self._tail_lock = threading.Lock()
        self._index_lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._released_at = time.monotonic()
        self._unreleased = False  # rows were flushed since memory was last returned to the OS

    # ------------------------------------------------------------------ loading
    def load(self, kb_id: str | None = None, batch_rows: int = 65536) -> int:
        """Index every stored pattern of this shard's range (of every KB, or of ``kb_id``), then the rows still in
        its logs."""
        added = 0
        assert self.ranges is not None
        for lo, hi in self.ranges.load_ranges():
            added += self._load_stored(lo, hi, kb_id, batch_rows)
        if self.log is not None:
            for logged_kb, entries in self.log.pending(self.shard.shard_id):
                if kb_id is None or logged_kb == kb_id:
                    added += self._index_entries(logged_kb, entries, waiting=True)
        with self._index_lock:
            self.shard.trim()
        self.release_memory()  # after the batches read are gone: their pages are what is released
        return added

    def _load_stored(self, lo: int, hi: int, kb_id: str | None, batch_rows: int) -> int:
        """Index the stored rows of buckets ``lo..hi``, reading only the columns the index needs."""
        if self.store is None:
            return 0
        batches = (self.store.iter_all_buckets(lo, hi, batch_rows, INDEX_SCHEMA) if kb_id is None
                   else self.store.iter_bucket_range(kb_id, lo, hi, batch_rows, INDEX_SCHEMA))
        return sum(self.index_table(pa.Table.from_batches([batch]), waiting=False) for batch in batches)

    def release_memory(self) -> None:
        """Return what the process freed to the OS: the store engine's retained memory, Arrow's, the heap's."""
        if self.store is not None:
            self.store.release_memory()
        release_arrow_pool()
        trim_heap()
        self._released_at = time.monotonic()

    def index_table(self, table: pa.Table, waiting: bool = True) -> int:
        """Index the rows not yet known (rows shaped like ``schema.pattern_rows.PATTERN_SCHEMA``) of the buckets
        this shard holds: a learn routed by a map version since moved on may reach it late, after the shard gave
        its range away."""
        if table.num_rows == 0:
            return 0
        added = 0
        with self._index_lock:
            table = self._held_rows(table)
            kb_ids = table.column("kb_id")
            for kb_id in pc.unique(kb_ids).to_pylist():
                rows = table.filter(pc.equal(kb_ids, kb_id))
                added += self.shard.add(kb_id, rows.column("name").to_pylist(), rows.column("pattern_data"),
                                        rows.column("bucket").to_numpy())
        if waiting and added:
            self.state.waiting_rows += added
            if self.state.waiting_rows >= self.policy.max_rows:
                self._wake.set()
        return added

    def catch_up(self, kb_id: str | None = None) -> int:
        """Index the entries committed to this shard's log of ``kb_id`` (of every KB by default) since the last
        one indexed; returns how many patterns were new."""
        if self.log is None:
            return 0
        added = 0
        for logged_kb in self.log.kbs(self.shard.shard_id) if kb_id is None else [kb_id]:
            with self._tail_lock:
                after = self._tailed.get(logged_kb)
            entries = self.log.entries(logged_kb, self.shard.shard_id, after=after)
            if entries:
                added += self._index_entries(logged_kb, entries, waiting=True)
        return added

    def _index_entries(self, kb_id: str, entries: Sequence[LogEntry], waiting: bool = False) -> int:
        """Index log entries of one KB, the oldest unindexed first, and move the KB's cursor past them."""
        added = self.index_table(_rows_of(entries), waiting=waiting)
        with self._tail_lock:
            last = self._tailed.get(kb_id)
            if last is None or _entry_order(entries[-1].entry_id) > _entry_order(last):
                self._tailed[kb_id] = entries[-1].entry_id
        return added

    # ----------------------------------------------------------------- flushing
    def flush(self) -> int:
        """Move everything waiting in this shard's logs to the store; returns how many rows were inserted."""
        if self.log is None or self.store is None:
            return 0
        inserted = 0
        with self._flush_lock:
            while True:
                pending = self.log.batch(self.shard.shard_id, self.policy.max_rows)
                if not pending:
                    break
                inserted += self._flush_batch(pending)
                if sum(e.rows.num_rows for _, entries in pending for e in entries) < self.policy.max_rows:
                    break
            self.state.flushes += 1
            self.state.last_flush_at = time.time()
            self.state.last_error = None
        return inserted

    def _flush_batch(self, pending: list[tuple[str, list[LogEntry]]]) -> int:
        assert self.store is not None and self.log is not None
        table = _rows_of([entry for _, entries in pending for entry in entries])
        for kb_id, entries in pending:  # the oldest entries: every one before them is indexed and trimmed already
            self._index_entries(kb_id, entries)
        self._forward(pending)
        self._step("before_insert")
        fresh = self._not_stored(table if self.shared_store else self._held_rows(table))
        if fresh.num_rows:
            self.store.insert_patterns(fresh)
            self.state.inserts += 1
            self.state.rows_flushed += fresh.num_rows
        self._step("after_insert")
        for kb_id, entries in pending:
            self.log.trim(kb_id, self.shard.shard_id, entries)
        self.state.waiting_rows = max(0, self.state.waiting_rows - table.num_rows)
        self._step("after_trim")
        return fresh.num_rows

    def _forward(self, pending: list[tuple[str, list[LogEntry]]]) -> int:
        """While a move runs, the moving rows of these log entries go to the new owner's log too (before they are
        trimmed here), each entry once; returns how many rows were forwarded."""
        assert self.log is not None and self.ranges is not None
        moves = self.ranges.forwards()
        forwarded = 0
        for kb_id, entries in pending:
            last = self._forwarded.get(kb_id)
            fresh = [e for e in entries if last is None or _entry_order(e.entry_id) > _entry_order(last)]
            if not fresh:
                continue
            self._forwarded[kb_id] = fresh[-1].entry_id
            table = _rows_of(fresh)
            buckets = table.column("bucket").to_numpy()
            for move in moves:
                moving = table.filter(pa.array(move.covers(buckets)))
                if moving.num_rows:
                    self.log.append(kb_id, move.dst, moving)
                    forwarded += moving.num_rows
        return forwarded

    def forward_pending(self) -> int:
        """The cut-over's step on an old owner: every moving row still in its logs reaches the new owner's log
        (no store insert: the log is durable, the flusher stores the rows later)."""
        if self.log is None:
            return 0
        with self._flush_lock:
            return self._forward(list(self.log.pending(self.shard.shard_id)))

    def index_pending(self) -> int:
        """The cut-over's step on a new owner: index every row in its logs (the flusher stores them later)."""
        if self.log is None:
            return 0
        with self._flush_lock:
            return sum(self._index_entries(kb_id, entries) for kb_id, entries in self.log.pending(self.shard.shard_id))

    def _not_stored(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` the store does not hold yet, each (kb_id, name) once."""
        assert self.store is not None
        kb_ids, names = table.column("kb_id").to_pylist(), table.column("name").to_pylist()
        keep = np.zeros(len(names), dtype=bool)
        seen: set[tuple[str, str]] = set()
        by_kb: dict[str, list[str]] = {}
        for kb_id, name in zip(kb_ids, names):
            by_kb.setdefault(kb_id, []).append(name)
        stored = {kb_id: self.store.existing_names(kb_id, kb_names) for kb_id, kb_names in by_kb.items()}
        for i, key in enumerate(zip(kb_ids, names)):
            if key not in seen and key[1] not in stored[key[0]]:
                keep[i] = True
            seen.add(key)
        return table.filter(pa.array(keep))

    def _step(self, name: str) -> None:
        if self.crash_at is not None:
            self.crash_at(name)

    def start_flusher(self) -> None:
        """Flush in a background thread until ``stop_flusher``."""
        if self._thread is not None or self.log is None or self.store is None:
            return
        self._thread = threading.Thread(target=self._run_flusher, name=f"flush-shard-{self.shard.shard_id}",
                                        daemon=True)
        self._thread.start()

    def stop_flusher(self, final_flush: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if final_flush:
            try:
                self.flush()
            except Exception as error:  # noqa: BLE001 - what is not flushed stays in the log
                self.state.last_error = _one_line(error)

    def retire(self) -> None:
        """Stop for good: this shard owns no range any more (its rows are with their new owners)."""
        self.stop_flusher(final_flush=False)
        if self.log is not None:
            self.log.drop_shard(self.shard.shard_id)

    def _run_flusher(self) -> None:
        pause = self.policy.interval
        while not self._stop.is_set():
            self._wake.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                flushed = self.flush()
                pause = self.policy.interval
                self._after_flush(flushed)
            except Exception as error:  # noqa: BLE001 - the log keeps the rows; the next pass retries
                self.state.last_error = _one_line(error)
                pause = self.policy.retry_seconds

    def _after_flush(self, inserted: int) -> None:
        """Memory goes back to the OS once a burst of flushes is over (a flush with nothing to insert), or every
        ``release_seconds`` while it lasts."""
        self._unreleased = self._unreleased or inserted > 0
        overdue = time.monotonic() - self._released_at >= self.policy.release_seconds
        if self._unreleased and (inserted == 0 or overdue):
            self.release_memory()
            self._unreleased = False

    # ------------------------------------------------------------------- moves
    def set_map(self, shard_map: ShardMap) -> None:
        assert self.ranges is not None
        with self._flush_lock:  # forwarding is decided under the flush lock: a flush sees one map
            if self.ranges.map is None or self.ranges.map.target != shard_map.target:
                self._forwarded.clear()  # another move: its rows are forwarded afresh
            self.ranges.update(shard_map)

    def export_range(self, lo: int, hi: int) -> pa.Table:
        """Every row of buckets ``lo..hi`` this shard holds (of every KB): in its store and in its logs."""
        parts = [pa.Table.from_batches([b]) for b in self.store.iter_all_buckets(lo, hi)] if self.store else []
        if self.log is not None:
            for _kb_id, entries in self.log.pending(self.shard.shard_id):
                rows = _rows_of(entries)
                buckets = rows.column("bucket").to_numpy()
                parts.append(rows.filter(pa.array((buckets >= lo) & (buckets <= hi))))
        parts = [p for p in parts if p.num_rows]
        return pa.concat_tables(parts).combine_chunks() if parts else PATTERN_SCHEMA.empty_table()

    def import_rows(self, table: pa.Table) -> int:
        """Rows of a range moving here: stored (those the store lacks) and indexed; returns how many were new."""
        if table.num_rows == 0:
            return 0
        if self.store is not None and not self.shared_store:
            fresh = self._not_stored(table)
            if fresh.num_rows:
                self.store.insert_patterns(fresh)
        return self.index_table(table, waiting=False)

    def finish_move(self) -> int:
        """After the cut-over: drop the rows this shard gave away (from its index, and from its own store);
        returns how many patterns it dropped."""
        assert self.ranges is not None
        with self._flush_lock:
            lo, hi = self.ranges.current
            if self.store is not None and not self.shared_store:
                self.store.delete_outside(lo, hi)
            with self._index_lock:
                dropped = self.shard.keep_only((lo, hi))
                self.ranges.settled()
        return dropped

    def _held_rows(self, table: pa.Table) -> pa.Table:
        assert self.ranges is not None
        buckets = table.column("bucket").to_numpy()
        held = np.zeros(len(buckets), dtype=bool)
        for lo, hi in self.ranges.held():
            held |= (buckets >= lo) & (buckets <= hi)
        return table if held.all() else table.filter(pa.array(held))

    # ------------------------------------------------------------------ queries
    def query(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions,
              version: int | None = None) -> LocalTop:
        assert self.ranges is not None
        self.catch_up(kb_id)
        with self._index_lock:  # the range and the rows as of one moment: ``finish_move`` drops and settles at once
            return self.shard.query(kb_id, stm, options, self.ranges.owned(version))

    def drop_kb(self, kb_id: str) -> None:
        """clear-all of one KB: its rows in the store, its log on this shard, its index."""
        with self._flush_lock:
            if self.store is not None:
                self.store.drop_kb(kb_id)
            if self.log is not None:
                self.log.drop(kb_id, self.shard.shard_id)
            with self._tail_lock:
                self._tailed.pop(kb_id, None)
            with self._index_lock:
                self.shard.drop_kb(kb_id)

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        assert self.ranges is not None
        self.catch_up(kb_id)
        with self._index_lock:
            return self.shard.export(kb_id, self.ranges.owned_now())

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        self.catch_up(kb_id)
        with self._index_lock:
            return self.shard.get(kb_id, name)

    def count(self, kb_id: str) -> int:
        assert self.ranges is not None
        self.catch_up(kb_id)
        with self._index_lock:
            return self.shard.count(kb_id, self.ranges.owned_now())

    def stats(self) -> ShardStats:
        assert self.ranges is not None
        self.catch_up()
        with self._index_lock:
            stats = self.shard.stats(self.ranges.current if self.ranges.map is not None else None)
        if self.log is None:
            return stats
        depth = self.log.depth(self.shard.shard_id)
        return replace(stats, log_rows=depth.rows, log_entries=depth.entries,
                       flush_lag_seconds=depth.lag_seconds(self.log.now_ms()), last_flush_error=self.state.last_error,
                       rows_flushed=self.state.rows_flushed, store_inserts=self.state.inserts,
                       store_parts=self.store.active_parts() if self.store is not None else 0)


def _rows_of(entries: Sequence[LogEntry]) -> pa.Table:
    return pa.concat_tables([entry.rows for entry in entries])


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _entry_order(entry_id: str) -> tuple[int, int]:
    """A Redis stream entry id (``ms-seq``) as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
