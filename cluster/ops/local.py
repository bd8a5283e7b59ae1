"""Single-process mode: the whole service in this process, with in-process shards (tests, small deployments).

The Ray mode (``cluster.ops.launcher``) runs the same ``KatoService`` in Serve replicas with shards as Ray actors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from actors.ranges import ShardRanges
from actors.shard import Shard
from actors.stored_shard import FlushPolicy, StoredShard
from actors.vector_index import NodeVectors, VectorIndex
from cluster.ops.embedded_redis import EmbeddedRedis, redis_or_embedded
from cluster.stores.clickhouse import PatternStore
from cluster.stores.engines import open_store
from cluster.stores.pattern_log import LogKeys, PatternLog
from cluster.stores.redis_client import connect
from cluster.stores.redis_kb import redis_kb_for
from cluster.stores.shard_map import ShardMapStore
from cluster.stores.vector_buffer import VectorBuffer
from schema.placement import ShardMap
from schema.settings import Settings
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards, ShardFactory
from serve_app.runtime import build_service
from serve_app.service import KatoService
from serve_app.topology import resharder, shard_ranges


@dataclass
class LocalRuntime:
    """Everything one process needs to serve the API with in-process shards."""

    settings: Settings
    client: redis.Redis
    store: PatternStore
    service: KatoService
    embedded_redis: EmbeddedRedis | None = None
    shards: LocalShards | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        for shard in self.shards.shards.values() if self.shards is not None else ():
            shard.stop_flusher()
        self.store.close()
        self.client.close()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def local_shard_factory(store: PatternStore, log: PatternLog, maps: ShardMapStore, policy: FlushPolicy
                        ) -> ShardFactory:
    """In-process shards sharing one store (chdb serves one data directory per process), loaded and flushing."""
    def make(shard_id: int, lo: int, hi: int) -> StoredShard:
        shard = StoredShard(Shard(shard_id, lo, hi), store, log, policy, ranges=ShardRanges(shard_id, lo, hi, maps),
                            shared_store=True)
        shard.load()
        shard.start_flusher()
        return shard
    return make


def start_local(settings: Settings, publish=None) -> LocalRuntime:
    client, embedded = redis_or_embedded(settings.redis, settings.data_dir, settings.redis_layout)
    try:
        store = open_store(settings.local_store_dsn(), settings.data_dir)
        log = PatternLog(connect(embedded.url if embedded is not None else str(settings.redis), decode=False),
                         LogKeys(settings.namespace))
        maps = ShardMapStore(client, settings.namespace)
        shard_map = maps.initialize(ShardMap.even(settings.shards))
        factory = local_shard_factory(store, log, maps, FlushPolicy(**settings.flush_policy()))
        shards = LocalShards([factory(*r) for r in shard_ranges(shard_map)], factory=factory)
        redis_kb = redis_kb_for(client, settings)
        vectors = NodeVectors(VectorIndex(store), VectorBuffer(client))
        backend = ClusterBackend(shards, shard_map.ranges, redis_kb, vectors, log_keys=log.keys, maps=maps)
        if len(shard_map.ranges) != settings.shards or shard_map.target is not None:
            resharder(settings, shards, maps).reshard(settings.shards)
            backend.refresh_map()
        return LocalRuntime(settings, client, store, build_service(client, backend, settings, publish), embedded,
                            shards)
    except Exception:
        if embedded is not None:
            embedded.stop()
        raise


