"""Ray Serve: the stateless HTTP ingress deployment (thin wrapper around ``KatoService``).

Each replica connects to the shared Redis and to the named shard actors; any replica can serve any
session because sessions live in Redis and are serialised by its cluster-wide lock.
"""

from __future__ import annotations

from typing import Any

import ray
import redis
from ray import serve

from actors.placement import even_ranges
from actors.ray_shard import ACTOR_PREFIX, RayShards, ShardVectorStore
from cluster.redis_kb import RedisKB
from cluster.settings import Settings
from serve_app.cluster_backend import ClusterBackend
from serve_app.http_app import build_app, process_holder
from serve_app.runtime import attach_observability, build_service

app = build_app()


@serve.deployment(name="KatoIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
@serve.ingress(app)
class KatoIngress:
    def __init__(self, settings: dict[str, Any], redis_url: str):
        self.settings = Settings(**settings)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        handles = [ray.get_actor(f"{ACTOR_PREFIX}{i}", namespace=self.settings.namespace)
                   for i in range(self.settings.shards)]
        backend = ClusterBackend(RayShards(handles), even_ranges(self.settings.shards),
                                 RedisKB(client, self.settings.service_name), ShardVectorStore(handles[0]))
        holder = process_holder()
        holder.service = build_service(client, backend, self.settings)
        attach_observability(holder, client, redis_url, self.settings)


def ingress_application(settings: Settings, redis_url: str) -> serve.Application:
    """The Serve application with the ingress autoscaling settings."""
    autoscaling = {"min_replicas": settings.min_replicas, "max_replicas": settings.max_replicas,
                   "target_ongoing_requests": settings.target_ongoing_requests}
    return KatoIngress.options(autoscaling_config=autoscaling).bind(settings.as_dict(), redis_url)
