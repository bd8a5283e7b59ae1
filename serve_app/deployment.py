"""Ray Serve: the stateless HTTP ingress deployment (thin wrapper around ``KatoService``).

Each replica connects to the shared Redis and to the named shard actors; any replica can serve any
session because sessions live in Redis and are serialised by its cluster-wide lock.
"""

from __future__ import annotations

from typing import Any

import ray
from ray import serve

from actors.ray_shard import ACTOR_PREFIX, RayShards, ShardVectorStore
from cluster.stores.engines import open_redis
from cluster.stores.pattern_log import LogKeys
from cluster.stores.redis_kb import RedisKB
from schema.placement import even_ranges
from schema.settings import Settings
from serve_app.api.app import build_app
from serve_app.api.holder import process_holder
from serve_app.cluster_backend import ClusterBackend
from serve_app.runtime import attach_observability, build_service

app = build_app()


@serve.deployment(name="KatoIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(app)
class KatoIngress:
    def __init__(self, settings: dict[str, Any], redis_url: str):
        self.settings = Settings(**settings)
        client = open_redis(redis_url)
        handles = [ray.get_actor(f"{ACTOR_PREFIX}{i}", namespace=self.settings.namespace)
                   for i in range(self.settings.shards)]
        backend = ClusterBackend(RayShards(handles), even_ranges(self.settings.shards),
                                 RedisKB(client, self.settings.service_name, log_bound=self.settings.log_bound_rows),
                                 ShardVectorStore(handles[0]), log_keys=LogKeys(self.settings.namespace))
        holder = process_holder()
        holder.service = build_service(client, backend, self.settings)
        attach_observability(holder, client, redis_url, self.settings)


def ingress_application(settings: Settings, redis_url: str) -> serve.Application:
    """The Serve application with the ingress autoscaling settings."""
    autoscaling = {"min_replicas": settings.min_replicas, "max_replicas": settings.max_replicas,
                   "target_ongoing_requests": settings.target_ongoing_requests}
    deployment = KatoIngress.options(autoscaling_config=autoscaling)  # type: ignore[attr-defined]  # @serve.deployment
    return deployment.bind(settings.as_dict(), redis_url)


def settings_from_args(args: dict[str, Any] | None) -> Settings:
    """Settings from ``KATO_*`` variables overridden by a Serve config's ``args`` (strings there are typed by the
    one settings reader, like environment values)."""
    return Settings.from_env(None, **(args or {}))


def app_builder(args: dict[str, str] | None = None) -> serve.Application:
    """Entry point for ``serve deploy`` / ``serve run serve_app.deployment:app_builder`` on a Ray cluster.

    Settings come from ``KATO_*`` environment variables overridden by ``args`` (the Serve config's
    ``args``). A cluster needs shared engines: ``KATO_REDIS`` must name a Redis server, and ``KATO_STORE``
    a ClickHouse server (so a shard restarted on another node finds its data). The shard actors are
    started here if they are not running yet (detached, named, reused on redeploy).
    """
    from actors.ray_shard import start_shard_actors

    settings = settings_from_args(args)
    if not settings.redis:
        raise ValueError("KATO_REDIS (or args.redis) must name the cluster's Redis server")
    ranges = even_ranges(settings.shards)
    start_shard_actors([(r.shard_id, r.lo, r.hi) for r in ranges],
                       [settings.shard_store_dsn(r.shard_id) for r in ranges], settings.namespace, detached=True,
                       redis_url=settings.redis, flush=settings.flush_policy())
    return ingress_application(settings, settings.redis)

