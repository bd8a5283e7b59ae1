"""Open the storage engines from a DSN or URL: ClickHouse (embedded chdb or a server) and Redis."""

from __future__ import annotations

import os

import redis

from cluster.stores.clickhouse import PatternStore, open_pattern_store
from cluster.stores.redis_client import connect


def default_store_dsn(data_dir: str | os.PathLike[str]) -> str:
    return f"chdb://{os.path.abspath(os.fspath(data_dir))}/chdb"


def open_store(dsn: str | None, data_dir: str | os.PathLike[str], apply_ddl: bool = True) -> PatternStore:
    """The pattern store for ``dsn`` (default: embedded chdb in ``data_dir/chdb``), schema applied."""
    store = open_pattern_store(dsn or default_store_dsn(data_dir))
    if apply_ddl:
        store.apply_ddl()
    return store


def open_redis(url: str) -> redis.Redis:
    """The service's Redis client for ``url`` (``cluster.stores.redis_client``)."""
    return connect(url)
