"""Assemble a ``KatoService`` and its HTTP host's observability from settings (shared by the Serve replicas,
``serve_app.deployment``, and the single-process mode, ``cluster.ops.local``)."""

from __future__ import annotations

from typing import Any

import redis

from cluster.stores.sessions import SessionStore
from schema.config import ServerDefaults
from schema.settings import Settings
from serve_app.access import PayloadLimits, parse_api_keys
from serve_app.cluster_backend import ClusterBackend
from serve_app.resharder import Progress, Resharder, ReshardRunner
from serve_app.service import KatoService
from serve_app.topology import resharder


def build_service(client: redis.Redis, backend: ClusterBackend, settings: Settings, publish=None) -> KatoService:
    limits = PayloadLimits(settings.max_events_per_request, settings.max_symbols_per_event, settings.max_symbol_length)
    service = KatoService(SessionStore(client, default_ttl=settings.session_ttl), backend, ServerDefaults.from_env(),
                          settings.service_name, publish, limits)
    maps = backend.maps
    if maps is not None:
        def make(progress: Progress) -> Resharder:
            return resharder(settings, backend.shards, maps, progress)  # type: ignore[arg-type]

        service.resharding = ReshardRunner(make, client, settings.namespace, after=backend.refresh_map)
    return service


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
