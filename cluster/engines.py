"""Open the two storage engines from settings: a DSN/URL, or the embedded defaults under ``data_dir``."""

from __future__ import annotations

import os

import redis

from cluster.embedded_redis import EmbeddedRedis
from cluster.store import PatternStore, open_pattern_store


def open_redis(url: str | None, data_dir: str | os.PathLike[str]) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """A client for ``url``; without one, start an embedded redis-server under ``data_dir/redis``.

    The caller owns the returned ``EmbeddedRedis`` (stop it on shutdown).
    """
    embedded = None
    if not url:
        embedded = EmbeddedRedis(data_dir)
        url = embedded.url
    return redis.Redis.from_url(url, decode_responses=True), embedded


def default_store_dsn(data_dir: str | os.PathLike[str]) -> str:
    return f"chdb://{os.path.abspath(os.fspath(data_dir))}/chdb"


def open_store(dsn: str | None, data_dir: str | os.PathLike[str], apply_ddl: bool = True) -> PatternStore:
    """The pattern store for ``dsn`` (default: embedded chdb in ``data_dir/chdb``), schema applied."""
    store = open_pattern_store(dsn or default_store_dsn(data_dir))
    if apply_ddl:
        store.apply_ddl()
    return store
