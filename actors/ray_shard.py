"""Thin Ray wrapper: a named, restartable actor around ``StoredShard``.

A shard actor that dies is restarted by Ray (``max_restarts``) and reloads its bucket range from its store and
its write-ahead logs in ``__init__``, so every acknowledged learn survives; its flusher thread moves the logs
to the store. In embedded mode each shard owns its own chdb data directory (chdb allows one process per
directory); with a ClickHouse server all shards share the tables.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Sequence

import pyarrow as pa
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from actors.shard import LocalTop, Shard, ShardStats
from actors.stored_shard import FlushPolicy, StoredShard
from schema.errors import KatoError, ShardUnavailable
from schema.rules.query import QueryOptions

ACTOR_PREFIX = "kato-shard-"
TRANSIENT_ERRORS = (RayActorError, ActorDiedError, ActorUnavailableError)


def get_or_unavailable(refs, timeout: float):
    """``ray.get`` with Ray's failures in the project's family: a dead or restarting actor is
    ``ShardUnavailable``; an error of ours raised inside the actor (say ``StoreUnavailable``) is raised again as
    itself; anything else (a bug) passes through."""
    try:
        return ray.get(refs, timeout=timeout)
    except TRANSIENT_ERRORS as error:
        raise ShardUnavailable() from error
    except RayTaskError as error:
        if isinstance(error.cause, KatoError):
            raise error.cause from error
        raise


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)
class ShardActor:
    def __init__(self, shard_id: int, lo: int, hi: int, store_dsn: str | None, redis_url: str | None = None,
                 flush: dict | None = None, namespace: str = "kato"):
        from cluster.stores.engines import open_store
        from cluster.stores.pattern_log import PatternLog

        store = open_store(store_dsn, ".") if store_dsn else None
        log = PatternLog.from_url(redis_url, namespace) if redis_url else None
        self.inner = StoredShard(Shard(shard_id, lo, hi), store, log, FlushPolicy(**(flush or {})))
        self.loaded = self.inner.load()
        self.inner.start_flusher()

    def ready(self) -> int:
        return self.loaded

    def query(self, request: bytes) -> bytes:
        """The local top for a pickled ``(kb_id, stm, options)``, pickled here: Ray's generic serialization of
        the dataclasses costs more, both ways (about 1 ms per query with two shards)."""
        kb_id, stm, options = pickle.loads(request)
        return pickle.dumps(self.inner.query(kb_id, stm, options), protocol=pickle.HIGHEST_PROTOCOL)

    def index_table(self, table: pa.Table) -> int:
        return self.inner.index_table(table)

    def flush(self) -> int:
        return self.inner.flush()

    def drop_kb(self, kb_id: str) -> None:
        self.inner.drop_kb(kb_id)

    def stats(self) -> ShardStats:
        return self.inner.stats()

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return self.inner.export(kb_id)

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return self.inner.get(kb_id, name)

    def nearest_vectors(self, kb_id: str, vector: list[float], k: int = 3) -> list[str]:
        return self.inner.store.nearest_vectors(kb_id, vector, k) if self.inner.store is not None else []

    def insert_vectors(self, kb_id: str, names: list[str], vectors: list[list[float]]) -> None:
        if self.inner.store is not None:
            self.inner.store.insert_vectors(kb_id, names, vectors)

    def save_shard_map(self, ranges: list[tuple[int, int, int]]) -> int:
        return self.inner.store.save_shard_map(ranges) if self.inner.store is not None else 0

    def pid(self) -> int:
        import os

        return os.getpid()


def start_shard_actors(ranges: Sequence[tuple[int, int, int]], store_dsns: Sequence[str | None],
                       namespace: str, detached: bool = False, redis_url: str | None = None,
                       flush: dict | None = None) -> list[ray.actor.ActorHandle]:
    """Start (or reuse) one named actor per bucket range and wait until each has loaded its range (and the
    rows still in its write-ahead logs on ``redis_url``)."""
    handles = [
        ShardActor.options(  # type: ignore[attr-defined]  # added by @ray.remote
            name=f"{ACTOR_PREFIX}{shard_id}", namespace=namespace, get_if_exists=True,
            lifetime="detached" if detached else None).remote(shard_id, lo, hi, dsn, redis_url, flush, namespace)
        for (shard_id, lo, hi), dsn in zip(ranges, store_dsns)
    ]
    ray.get([h.ready.remote() for h in handles])
    return handles


class RayShards:
    """``ShardClient`` over shard actors; a restarting shard surfaces as ``ShardUnavailable``."""

    def __init__(self, handles: Sequence[ray.actor.ActorHandle], timeout: float = 30.0):
        self.handles = list(handles)
        self.timeout = timeout

    def _get(self, refs):
        return get_or_unavailable(refs, self.timeout)

    def query_many(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions) -> list[LocalTop]:
        request = pickle.dumps((kb_id, [list(e) for e in stm], options), protocol=pickle.HIGHEST_PROTOCOL)
        return [pickle.loads(packed) for packed in self._get([h.query.remote(request) for h in self.handles])]

    def index_tables(self, tables: Sequence[pa.Table | None]) -> int:
        refs = [h.index_table.remote(t) for h, t in zip(self.handles, tables) if t is not None and t.num_rows]
        return sum(self._get(refs)) if refs else 0

    def flush(self) -> int:
        return sum(self._get([h.flush.remote() for h in self.handles]))

    def drop_kb(self, kb_id: str) -> None:
        self._get([h.drop_kb.remote(kb_id) for h in self.handles])

    def stats(self) -> list[ShardStats]:
        return self._get([h.stats.remote() for h in self.handles])

    def export(self, kb_id: str) -> list[tuple[str, list[list[str]]]]:
        return [item for part in self._get([h.export.remote(kb_id) for h in self.handles]) for item in part]

    def get(self, kb_id: str, name: str) -> list[list[str]] | None:
        return next((e for e in self._get([h.get.remote(kb_id, name) for h in self.handles]) if e is not None),
                    None)

    def wait_ready(self, deadline_seconds: float = 60.0) -> None:
        """Block until every shard answers (e.g. after a restart)."""
        deadline = time.monotonic() + deadline_seconds
        while True:
            try:
                self._get([h.ready.remote() for h in self.handles])
                return
            except ShardUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class ShardVectorStore:
    """The vectors table reached through one shard actor (the process that owns its embedded store)."""

    def __init__(self, handle: ray.actor.ActorHandle, timeout: float = 30.0):
        self.handle = handle
        self.timeout = timeout

    def _get(self, ref):
        return get_or_unavailable(ref, self.timeout)

    def nearest_vectors(self, kb_id: str, vector: Sequence[float], k: int = 3) -> list[str]:
        return self._get(self.handle.nearest_vectors.remote(kb_id, [float(x) for x in vector], k))

    def insert_vectors(self, kb_id: str, names: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        self._get(self.handle.insert_vectors.remote(kb_id, list(names), [list(v) for v in vectors]))

    def drop_kb(self, kb_id: str) -> None:
        self._get(self.handle.drop_kb.remote(kb_id))
