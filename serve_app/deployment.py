"""Ray Serve: the stateless HTTP ingress deployment (thin wrapper around ``KatoService``).

Each replica connects to the shared Redis and to the named shard actors; any replica can serve any
session because sessions live in Redis and are serialised by its cluster-wide lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray
from ray import serve

from actors.process_memory import tune_collector
from actors.ray_shard import RayShards, ShardVectorStore, Starter, start_shard_actors
from cluster.stores.engines import open_redis
from cluster.stores.pattern_log import LogKeys
from cluster.stores.redis_kb import redis_kb_for
from cluster.stores.shard_map import ShardMapStore
from schema.placement import ShardMap
from schema.settings import Settings
from serve_app.api.app import build_app
from serve_app.api.holder import process_holder
from serve_app.cluster_backend import ClusterBackend
from serve_app.runtime import attach_observability, build_service
from serve_app.topology import resharder, saved_map, shard_ranges

app = build_app()


@serve.deployment(name="KatoIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(app)
class KatoIngress:
    def __init__(self, settings: dict[str, Any], redis_url: str):
        self.settings = Settings(**settings)
        client = open_redis(redis_url)
        maps = ShardMapStore(client, self.settings.namespace)
        shard_map = saved_map(maps, self.settings)
        shards = RayShards({}, namespace=self.settings.namespace, starter=shard_starter(self.settings, redis_url))
        shards.sync(shard_map)
        backend = ClusterBackend(shards, shard_map.ranges,
                                 redis_kb_for(client, self.settings),
                                 ShardVectorStore(shards.handles[0]), log_keys=LogKeys(self.settings.namespace),
                                 maps=maps)
        holder = process_holder()
        holder.service = build_service(client, backend, self.settings)
        attach_observability(holder, client, redis_url, self.settings)
        tune_collector()


def ingress_application(settings: Settings, redis_url: str, autoscaling: dict[str, Any] | None = None,
                        actor_options: dict[str, Any] | None = None) -> serve.Application:
    """The Serve application with the ingress autoscaling settings (``autoscaling`` and ``actor_options``, as a
    Serve config's deployment gives them, win over the settings')."""
    autoscaling = autoscaling or {"min_replicas": settings.min_replicas, "max_replicas": settings.max_replicas,
                                  "target_ongoing_requests": settings.target_ongoing_requests}
    options: dict[str, Any] = {"autoscaling_config": autoscaling,
                               "logging_config": {"enable_access_log": settings.access_log}}
    if actor_options:
        options["ray_actor_options"] = actor_options
    deployment = KatoIngress.options(**options)  # type: ignore[attr-defined]  # @serve.deployment
    return deployment.bind(settings.as_dict(), redis_url)


def shard_starter(settings: Settings, redis_url: str) -> Starter:
    """Starts (or finds) one shard actor, detached and named, on the service's engines."""
    def start(shard_id: int, lo: int, hi: int, occupied: Mapping[str, int]) -> ray.actor.ActorHandle:
        return start_shard_actors([(shard_id, lo, hi)], [settings.shard_store_dsn(shard_id)], settings.namespace,
                                  detached=True, redis_url=redis_url, flush=settings.flush_policy(),
                                  occupied=occupied)[0]
    return start


def open_shards(settings: Settings, redis_url: str, maps: ShardMapStore) -> tuple[RayShards, ShardMap]:
    """Start (or reuse) the shard actors of the saved map, all at once, and wait until each has loaded."""
    shard_map = saved_map(maps, settings)
    ranges = shard_ranges(shard_map)
    handles = start_shard_actors(ranges, [settings.shard_store_dsn(shard_id) for shard_id, _, _ in ranges],
                                 settings.namespace, detached=True, redis_url=redis_url,
                                 flush=settings.flush_policy())
    shards = RayShards(dict(zip((shard_id for shard_id, _, _ in ranges), handles)), namespace=settings.namespace,
                       starter=shard_starter(settings, redis_url))
    return shards, shard_map


def reshard_to(settings: Settings, shards: RayShards, maps: ShardMapStore, progress=None) -> None:
    """Reshard to ``settings.shards`` if the saved map has another count (or a reshard was interrupted)."""
    current = maps.load()
    if current is not None and (len(current.ranges) != settings.shards or current.target is not None):
        resharder(settings, shards, maps, progress).reshard(settings.shards)


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
    settings = settings_from_args(args)
    if not settings.redis:
        raise ValueError("KATO_REDIS (or args.redis) must name the cluster's Redis server")
    maps = ShardMapStore(open_redis(settings.redis), settings.namespace)
    shards, _ = open_shards(settings, settings.redis, maps)
    reshard_to(settings, shards, maps)
    return ingress_application(settings, settings.redis)

