"""Resharding online: split or merge bucket ranges while the service serves (plain class; the CLI, the admin
endpoint and ``up`` drive it).

How a reshard to N shards runs (``reshard``):

1. Plan: ``schema.placement.rebalanced`` keeps every range with the shard that holds most of it, so as few
   buckets as possible move; the target is recorded in the shard map (``begin``; same version: nothing moves
   for readers or writers yet). New shards are started, owning nothing yet.
2. Copy: each moving range's rows go from its old owner to its new one, in chunks of buckets (store and log
   rows; the new owner stores the rows it lacks and indexes them). From the moment the shards see the target,
   every old owner's flusher also copies the moving rows it flushes into the new owner's log, so learns made
   during the copy reach the new owner (catch-up).
3. Cut-over: writes into the moving buckets are frozen for a moment (they wait, then retry); the old owners
   forward their last moving rows to the new owners' logs, the new owners index what their logs hold (no store
   insert in the pause: the logs are durable, the flushers store the rows afterwards); then the map switches
   to the next version, atomically, only while the freeze still holds. Every query names the map version it
   was routed by and each shard answers for that version's range, so a query sees every pattern
   exactly once, before, during and after the move; every learn's commit checks the version it was routed
   by, so no learn routed by the old map can land after the cut-over.
4. Clean-up: old owners drop what they gave away; shards that own nothing are stopped.

A reshard that stops half-way (the process running it dies) leaves the map at the old version with its target
recorded: readers and writers go on with the old owners (no range is ever without one), and ``reshard`` run
again resumes it (copies are idempotent); ``abort`` rolls it back instead.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cluster.stores.key_space import hash_tag
from cluster.stores.shard_map import FreezeExpired, ShardMapStore
from schema.errors import Conflict, ShardUnavailable
from schema.placement import ShardMap, Transfer, rebalanced

CHUNK_BUCKETS = 1024  # buckets copied per round trip (about 15k rows of a 1M-pattern corpus)
FREEZE_MS = 3000  # how long writes into the moving buckets may wait at the cut-over
CATCH_UP_ROUNDS = 3
CUT_OVER_ATTEMPTS = 5


class ReshardShards(Protocol):
    """What a reshard asks of the shards (``serve_app.local_shards.LocalShards``, ``actors.ray_shard.RayShards``)."""

    def set_map(self, shard_map: ShardMap) -> None: ...

    def copy_range(self, src: int, dst: int, lo: int, hi: int) -> tuple[int, int]: ...

    def flush_shard(self, shard_id: int) -> int: ...

    def forward_shard(self, shard_id: int) -> int: ...

    def index_shard(self, shard_id: int) -> int: ...

    def finish_move(self, shard_id: int) -> int: ...

    def add_shard(self, shard_id: int, lo: int, hi: int) -> None: ...

    def remove_shard(self, shard_id: int) -> None: ...


@dataclass
class ReshardReport:
    from_shards: int
    to_shards: int
    version: int
    rows_copied: int = 0
    bytes_copied: int = 0
    caught_up_rows: int = 0
    seconds: float = 0.0
    write_pause_ms: float = 0.0
    moves: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


Progress = Callable[[str, dict[str, Any]], None]


class Resharder:
    def __init__(self, shards: ReshardShards, maps: ShardMapStore, progress: Progress | None = None,
                 chunk_buckets: int = CHUNK_BUCKETS, freeze_ms: int = FREEZE_MS,
                 retire: Callable[[int], None] | None = None, shard_wait: float = 120.0) -> None:
        """``progress(phase, figures)`` hears of every step; ``retire(shard_id)`` disposes of a shard a merge
        left without a range (its data directory, in embedded mode)."""
        self.shards = shards
        self.maps = maps
        self.progress = progress or (lambda _phase, _figures: None)
        self.chunk_buckets = chunk_buckets
        self.freeze_ms = freeze_ms
        self.retire = retire or (lambda _shard_id: None)
        self.shard_wait = shard_wait  # how long a step waits for a restarting shard before the reshard fails

    def reshard(self, count: int) -> ReshardReport:
        """Move to ``count`` shards (or finish the reshard to ``count`` that was interrupted)."""
        if count < 1:
            raise Conflict(f"a cluster needs at least one shard (asked for {count})")
        start = time.monotonic()
        started = self._begin(count)
        assert started.target is not None
        report = ReshardReport(len(started.ranges), len(started.target), started.version)
        if started.target == started.ranges:
            return report
        for r in started.target:
            if r.shard_id not in {c.shard_id for c in started.ranges}:
                self._call(self.shards.add_shard, r.shard_id, r.lo, r.hi)
        self._call(self.shards.set_map, started)
        self._copy(started.moving, report)
        self._catch_up(started, report)
        switched = self._cut_over(started, report)
        self._call(self.shards.set_map, switched)
        self._clean_up(started, switched)
        report.version, report.seconds = switched.version, time.monotonic() - start
        self.progress("done", report.as_dict())
        return report

    def abort(self) -> ShardMap:
        """Roll back an interrupted reshard: the old owners keep their ranges; receivers drop what they got."""
        current = self.maps.load()
        if current is None or current.target is None:
            raise Conflict("no reshard is in progress")
        back = self.maps.rollback(current)
        self._call(self.shards.set_map, back)
        for shard_id in current.shard_ids():
            if shard_id in {r.shard_id for r in back.ranges}:
                self._call(self.shards.finish_move, shard_id)
            else:
                self._call(self.shards.remove_shard, shard_id)
                self.retire(shard_id)
        return back

    def _call(self, step: Callable[..., Any], *args: Any) -> Any:
        """One step on the shards, tried again while a shard restarts (every step can be repeated safely: copies
        skip rows already held, forwarded and indexed rows are deduplicated by name)."""
        deadline = time.monotonic() + self.shard_wait
        while True:
            try:
                return step(*args)
            except ShardUnavailable:
                if time.monotonic() > deadline:
                    raise
                self.progress("waiting for a shard", {"step": getattr(step, "__name__", "step")})
                time.sleep(0.5)

    def _begin(self, count: int) -> ShardMap:
        current = self.maps.load()
        if current is None:
            raise Conflict("no shard map is saved: start the service first")
        if current.target is not None:
            if len(current.target) != count:
                raise Conflict(f"a reshard to {len(current.target)} shards is in progress: run it again with "
                               f"--shards {len(current.target)} to finish it, or abort it")
            return current
        target = rebalanced(current.ranges, count)
        if target == current.ranges:
            return ShardMap(current.version, current.ranges, target)
        return self.maps.begin(current, target)

    def _copy(self, moves: list[Transfer], report: ReshardReport) -> None:
        for move in moves:
            rows_before = report.rows_copied
            for lo in range(move.lo, move.hi + 1, self.chunk_buckets):
                hi = min(move.hi, lo + self.chunk_buckets - 1)
                rows, size = self._call(self.shards.copy_range, move.src, move.dst, lo, hi)
                report.rows_copied += rows
                report.bytes_copied += size
                self.progress("copying", {"src": move.src, "dst": move.dst, "buckets_done": lo - move.lo,
                                          "buckets": move.hi - move.lo + 1, "rows_copied": report.rows_copied,
                                          "bytes_copied": report.bytes_copied})
            report.moves.append({"src": move.src, "dst": move.dst, "lo": move.lo, "hi": move.hi,
                                 "rows": report.rows_copied - rows_before})

    def _flush(self, shard_ids: list[int]) -> int:
        return sum(self._call(self.shards.flush_shard, shard_id) for shard_id in shard_ids)

    def _catch_up(self, started: ShardMap, report: ReshardReport) -> None:
        """Flush the old owners (their moving rows reach the new owners' logs), then the new owners, until
        little is left to carry over at the cut-over."""
        sources, receivers = _sides(started.moving)
        for _ in range(CATCH_UP_ROUNDS):
            self._flush(sources)
            carried = self._flush(receivers)
            report.caught_up_rows += carried
            self.progress("catching up", {"lag_rows": carried, "caught_up_rows": report.caught_up_rows})
            if carried < 1000:
                return

    def _cut_over(self, started: ShardMap, report: ReshardReport) -> ShardMap:
        sources, receivers = _sides(started.moving)
        current = started
        for _ in range(CUT_OVER_ATTEMPTS):
            frozen = self.maps.freeze(current, self.freeze_ms)
            paused = time.monotonic()
            for shard_id in sources:  # the last moving rows reach the new owners' logs, then their indexes
                self._call(self.shards.forward_shard, shard_id)
            for shard_id in receivers:
                self._call(self.shards.index_shard, shard_id)
            try:
                switched = self.maps.switch(frozen)
            except FreezeExpired:
                current = frozen
                self.progress("cut-over retried", {"freeze_ms": self.freeze_ms})
                continue
            report.write_pause_ms = (time.monotonic() - paused) * 1000
            self.progress("switched", {"version": switched.version, "write_pause_ms": report.write_pause_ms})
            return switched
        raise Conflict(f"the cut-over did not fit in a {self.freeze_ms} ms write freeze {CUT_OVER_ATTEMPTS} times")

    def _clean_up(self, started: ShardMap, switched: ShardMap) -> None:
        kept = {r.shard_id for r in switched.ranges}
        sources, receivers = _sides(started.moving)
        for shard_id in sorted(set(sources) | set(receivers)):
            if shard_id in kept:
                self._call(self.shards.finish_move, shard_id)
        for shard_id in started.shard_ids():
            if shard_id not in kept:
                self._call(self.shards.remove_shard, shard_id)
                self.retire(shard_id)


def _sides(moves: list[Transfer]) -> tuple[list[int], list[int]]:
    return sorted({m.src for m in moves}), sorted({m.dst for m in moves})


class ReshardRunner:
    """A reshard run in the background of a service process, its progress in Redis (``kato:reshard:{ns}``) so
    that every replica can report it. One runs at a time cluster-wide: the runner holds a lease in Redis
    (``kato:reshard_lock:{ns}``), renewed at every step; a runner that died loses it after ``LEASE_MS``."""

    LEASE_MS = 60_000

    def __init__(self, make: Callable[[Progress], Resharder], client: Any, namespace: str,
                 after: Callable[[], Any] = lambda: None) -> None:
        """``make(progress)`` builds the ``Resharder``; ``after()`` runs once it ends (the backend reloads the map)."""
        self.make = make
        self.client = client
        tag = hash_tag(client)
        self.key = f"{tag}kato:reshard:{namespace}"
        self.lock_key = f"{tag}kato:reshard_lock:{namespace}"
        self.after = after
        self.owner = uuid.uuid4().hex
        self._thread: threading.Thread | None = None

    def start(self, count: int) -> dict[str, Any]:
        if not self.client.set(self.lock_key, self.owner, nx=True, px=self.LEASE_MS):
            raise Conflict("a reshard is already running (GET /admin/reshard follows it)")
        self.client.delete(self.key)
        self.record("starting", {"to_shards": count})
        self._thread = threading.Thread(target=self._run, args=(count,), name="reshard", daemon=True)
        self._thread.start()
        return {"status": "started", "to_shards": count}

    def abort(self) -> ShardMap:
        """Roll back a reshard cut short (not one that is running: that one holds the lease)."""
        if not self.client.set(self.lock_key, self.owner, nx=True, px=self.LEASE_MS):
            raise Conflict("a reshard is running: it cannot be aborted until it ends")
        try:
            back = self.make(self.record).abort()
            self.record("aborted", {"version": back.version})
            return back
        finally:
            self._release()
            self.after()

    def _run(self, count: int) -> None:
        try:
            self.make(self.record).reshard(count)
        except Exception as error:  # noqa: BLE001 - reported through the status; the map stays consistent
            self.record("failed", {"error": f"{type(error).__name__}: {error}"})
        finally:
            self._release()
            self.after()

    def _release(self) -> None:
        if self.client.get(self.lock_key) == self.owner:
            self.client.delete(self.lock_key)

    def record(self, phase: str, figures: dict[str, Any]) -> None:
        self.client.hset(self.key, mapping={"phase": phase, "updated_at": time.time(),
                                            **{k: json.dumps(v) for k, v in figures.items()}})
        if self.client.get(self.lock_key) == self.owner:
            self.client.pexpire(self.lock_key, self.LEASE_MS)

    def progress(self) -> dict[str, Any]:
        raw = self.client.hgetall(self.key)
        return {k: (v if k in ("phase", "updated_at") else json.loads(v)) for k, v in raw.items()}
