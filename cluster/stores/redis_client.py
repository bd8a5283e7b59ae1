"""The Redis client the service uses: redis-py with its connection failures turned into ``RedisUnavailable``.

This is where Redis crosses into the project. A client from ``connect`` raises ``RedisDown`` (a
``schema.errors.RedisUnavailable``, so a 503 with Retry-After, and still a ``redis.ConnectionError`` for code
that handles Redis errors itself) when the server is unreachable, loading its data set, or read-only; every other
Redis error passes through unchanged (it would be a bug of ours).

On a Redis Cluster (``redis+cluster://host:port[,host:port…]``) every key of the deployment shares one slot
(``cluster.stores.key_space``), so the client talks to the master that serves that slot, exactly as to a single
server: scripts, transactions and multi-key commands need nothing else. When the slot moves (a failover, or a
slot migration: ``MOVED``/``ASK``) or its master stops answering, the client asks the cluster again who serves
the slot, and the request in flight gets a 503 (the client retries it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.client import Pipeline
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    MovedError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cluster.stores.key_space import CLUSTER_TAG, cluster_nodes, is_cluster_url
from schema.errors import RedisUnavailable

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError)
MOVED = (MovedError, AskError, ClusterDownError, TryAgainError)  # the slot is elsewhere or between masters


class RedisDown(RedisUnavailable, RedisConnectionError):
    """Redis is unavailable; retry shortly"""

    def __init__(self, reason: str = "") -> None:
        super().__init__("Redis is unavailable; retry shortly")
        self.reason = reason


@contextmanager
def unavailable_as_kato(follow: SlotFollower | None = None) -> Iterator[None]:
    """Unavailability errors as ``RedisDown``; with ``follow``, a moved slot too, after finding its new master."""
    try:
        yield
    except RedisDown:
        raise
    except UNAVAILABLE as error:
        if follow is not None:
            follow.invalidate()
        raise RedisDown(str(error).splitlines()[0] if str(error) else type(error).__name__) from error
    except MOVED as error:
        if follow is None:
            raise
        follow.invalidate()
        raise RedisDown(f"the deployment's slot moved ({type(error).__name__} {error})") from error


class TranslatingPipeline(Pipeline):
    follow: SlotFollower | None = None

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        with unavailable_as_kato(self.follow):
            return super().execute(raise_on_error)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        with unavailable_as_kato(self.follow):
            return super().immediate_execute_command(*args, **options)


class TranslatingRedis(redis.Redis):
    hash_tag = ""  # what the deployment's keys start with (``cluster.stores.key_space.hash_tag``)
    follow: SlotFollower | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.follow is not None:
            self.follow.ensure()
        with unavailable_as_kato(self.follow):
            return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> TranslatingPipeline:
        if self.follow is not None:
            self.follow.ensure()
        pipe = TranslatingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.follow = self.follow
        return pipe


class SlotFollower:
    """Keeps a connection pool pointed at the master serving the deployment's slot (found by ``CLUSTER SLOTS``
    on any of the cluster's nodes)."""

    def __init__(self, pool: redis.ConnectionPool, seeds: list[tuple[str, int]]) -> None:
        self.pool = pool
        self.seeds = seeds
        self.slot = key_slot(CLUSTER_TAG.encode())
        self._lock = threading.Lock()
        self._stale = True

    def invalidate(self) -> None:
        self._stale = True

    def ensure(self) -> None:
        if not self._stale:
            return
        with self._lock:
            if not self._stale:
                return
            host, port = self._owner()
            if (self.pool.connection_kwargs.get("host"), self.pool.connection_kwargs.get("port")) != (host, port):
                self.pool.connection_kwargs.update(host=host, port=port)
                self.pool.disconnect()
                self.pool.reset()  # its idle connections keep the address they were made with
            self._stale = False

    def _owner(self) -> tuple[str, int]:
        errors = []
        for host, port in self.seeds + [(self.pool.connection_kwargs["host"], self.pool.connection_kwargs["port"])]:
            kwargs = {**self.pool.connection_kwargs, "host": host, "port": port, "decode_responses": False}
            seed = redis.ConnectionPool(self.pool.connection_class, **kwargs)  # same credentials and transport
            try:
                slots = redis.Redis(connection_pool=seed).execute_command("CLUSTER SLOTS")
            except (*UNAVAILABLE, ResponseError) as error:
                errors.append(f"{host}:{port}: {error}")
                continue
            finally:
                seed.disconnect()
            for start, end, master, *_ in slots:
                if int(start) <= self.slot <= int(end):
                    return master[0].decode() or host, int(master[1])
            errors.append(f"{host}:{port}: no master for slot {self.slot}")
        raise RedisDown("no node of the Redis Cluster serves the deployment's slot: " + "; ".join(errors))


def _cluster_client(url: str, decode: bool, **options: Any) -> TranslatingRedis:
    """A client for the master of the deployment's slot; ``url`` lists one or more nodes (``host:port,…``)."""
    first, seeds = cluster_nodes(url)
    pool = redis.ConnectionPool.from_url(first, decode_responses=decode, **options)
    client = TranslatingRedis(connection_pool=pool)
    client.hash_tag = CLUSTER_TAG
    client.follow = SlotFollower(pool, seeds)
    with unavailable_as_kato():
        client.follow.ensure()
    return client


def connect(url: str, decode: bool = True, **options: Any) -> redis.Redis:
    """A client for ``url`` (answers decoded to str unless ``decode`` is False) whose unavailability errors are
    ``RedisDown``; for a ``redis+cluster://`` URL, the client of the master serving the deployment's slot. Bytes
    that are not UTF-8 (the compact layout's binary hash fields) decode with surrogate escapes and encode back."""
    if decode:
        options.setdefault("encoding_errors", "surrogateescape")
    if is_cluster_url(url):
        return _cluster_client(url, decode, **options)
    return TranslatingRedis.from_url(url, decode_responses=decode, **options)
