"""Assemble a running service from settings: single-process (in-process shards) or on Ray.

Single-process mode serves tests and small deployments; the Ray mode (``serve_app.deployment``) runs the
same ``KatoService`` in Serve replicas with shards as Ray actors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from actors.placement import even_ranges
from actors.shard import Shard
from actors.stored_shard import StoredShard
from cluster.embedded_redis import EmbeddedRedis
from cluster.engines import open_redis, open_store
from cluster.redis_kb import RedisKB
from cluster.sessions_store import SessionStore
from cluster.settings import Settings
from cluster.store import PatternStore
from schema.config import ServerDefaults
from serve_app.access import PayloadLimits, parse_api_keys
from serve_app.cluster_backend import ClusterBackend
from serve_app.predictor import LocalShards
from serve_app.service import KatoService


@dataclass
class LocalRuntime:
    """Everything one process needs to serve the API with in-process shards."""

    settings: Settings
    client: redis.Redis
    store: PatternStore
    service: KatoService
    embedded_redis: EmbeddedRedis | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.store.close()
        self.client.close()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def build_service(client: redis.Redis, backend: ClusterBackend, settings: Settings, publish=None) -> KatoService:
    limits = PayloadLimits(settings.max_events_per_request, settings.max_symbols_per_event, settings.max_symbol_length)
    return KatoService(SessionStore(client, default_ttl=settings.session_ttl), backend, ServerDefaults.from_env(),
                       settings.service_name, publish, limits)


def start_local(settings: Settings, publish=None) -> LocalRuntime:
    client, embedded = open_redis(settings.redis, settings.data_dir)
    try:
        store = open_store(settings.local_store_dsn(), settings.data_dir)
        ranges = even_ranges(settings.shards)
        shards = [StoredShard(Shard(r.shard_id, r.lo, r.hi), store) for r in ranges]
        for shard in shards:
            shard.load()
        backend = ClusterBackend(LocalShards(shards), ranges, RedisKB(client, settings.service_name), store)
        return LocalRuntime(settings, client, store, build_service(client, backend, settings, publish), embedded)
    except Exception:
        if embedded is not None:
            embedded.stop()
        raise


def attach_observability(holder, client: redis.Redis, redis_url: str, settings: Settings) -> None:
    """Cluster-wide metrics and the WebSocket event bus for an HTTP host (replica or single process)."""
    from serve_app.events import SESSION_CREATED, EventBus
    from serve_app.monitoring import Monitor

    monitor = Monitor(client, settings.service_name)
    bus = EventBus.from_url(redis_url)

    def publish(event_type: str, data: dict[str, Any]) -> None:
        bus.publish(event_type, data)
        monitor.record_session_event("created" if event_type == SESSION_CREATED else "deleted")

    holder.service.publish = publish
    holder.monitor = monitor
    holder.events = bus
    holder.api_keys = parse_api_keys(settings.api_keys)
    holder.max_body_bytes = settings.max_body_bytes
