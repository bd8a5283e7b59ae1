"""Single-process mode: the whole service in this process, with in-process shards (tests, small deployments).

The Ray mode (``cluster.ops.launcher``) runs the same ``KatoService`` in Serve replicas with shards as Ray actors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from actors.shard import Shard
from actors.stored_shard import FlushPolicy, StoredShard
from cluster.ops.embedded_redis import EmbeddedRedis, redis_or_embedded
from cluster.stores.clickhouse import PatternStore
from cluster.stores.engines import open_store
from cluster.stores.pattern_log import LogKeys, PatternLog
from cluster.stores.redis_client import connect
from cluster.stores.redis_kb import RedisKB
from schema.placement import even_ranges
from schema.settings import Settings
from serve_app.cluster_backend import ClusterBackend
from serve_app.predictor import LocalShards
from serve_app.runtime import build_service
from serve_app.service import KatoService


@dataclass
class LocalRuntime:
    """Everything one process needs to serve the API with in-process shards."""

    settings: Settings
    client: redis.Redis
    store: PatternStore
    service: KatoService
    embedded_redis: EmbeddedRedis | None = None
    shards: list[StoredShard] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for shard in self.shards:
            shard.stop_flusher()
        self.store.close()
        self.client.close()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def start_local(settings: Settings, publish=None) -> LocalRuntime:
    client, embedded = redis_or_embedded(settings.redis, settings.data_dir)
    try:
        store = open_store(settings.local_store_dsn(), settings.data_dir)
        log = PatternLog(connect(embedded.url if embedded is not None else str(settings.redis), decode=False),
                         LogKeys(settings.namespace))
        ranges = even_ranges(settings.shards)
        policy = FlushPolicy(**settings.flush_policy())
        shards = [StoredShard(Shard(r.shard_id, r.lo, r.hi), store, log, policy) for r in ranges]
        for shard in shards:
            shard.load()
            shard.start_flusher()
        redis_kb = RedisKB(client, settings.service_name, log_bound=settings.log_bound_rows)
        backend = ClusterBackend(LocalShards(shards), ranges, redis_kb, store, log_keys=log.keys)
        return LocalRuntime(settings, client, store, build_service(client, backend, settings, publish), embedded,
                            shards)
    except Exception:
        if embedded is not None:
            embedded.stop()
        raise


