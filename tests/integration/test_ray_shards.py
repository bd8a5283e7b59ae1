"""Shard actors on a local Ray cluster: a killed shard restarts, reloads its range and answers the same."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from actors.ray_shard import RayShards, start_shard_actors
from cluster.ops.bench.workloads import standard_patterns, standard_queries
from cluster.stores.pattern_log import LogKeys
from cluster.stores.redis_kb import RedisKB
from schema.errors import ShardUnavailable
from schema.learning import make_pattern
from schema.placement import even_ranges
from schema.rules.query import QueryOptions
from serve_app.cluster_backend import ClusterBackend

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_killed_shard_restarts_with_its_data(ray_cluster, embedded_redis, redis_client, tmp_path):
    ray = ray_cluster
    ranges = even_ranges(2)
    dsns = [f"chdb://{tmp_path}/shard-{r.shard_id}/chdb" for r in ranges]
    namespace = f"test-{uuid.uuid4().hex}"
    handles = start_shard_actors([(r.shard_id, r.lo, r.hi) for r in ranges], dsns, namespace,
                                 redis_url=embedded_redis.url)
    shards = RayShards(handles)
    backend = ClusterBackend(shards, ranges, RedisKB(redis_client), log_keys=LogKeys(namespace))
    patterns = standard_patterns(500, seed=11)
    backend.learn_batch("kb_kato", [make_pattern(p) for p in patterns], 5)
    assert sum(s.patterns_per_kb.get("kb_kato", 0) for s in shards.stats()) == len({str(p) for p in patterns})
    queries = standard_queries(patterns, 5, seed=3)
    before = [backend.predict("kb_kato", q, QueryOptions(0.1, 20)) for q in queries]
    assert all(preds for preds, _ in before)

    victim = ray.get(handles[0].pid.remote())
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # requests fail cleanly until the restarted shard has reloaded its range
        try:
            shards.query_many("kb_kato", queries[0], QueryOptions())
        except ShardUnavailable:
            break
        assert time.monotonic() < deadline, "the killed shard kept answering"
        time.sleep(0.05)
    shards.wait_ready(120)
    assert ray.get(handles[0].pid.remote()) != victim
    after = [backend.predict("kb_kato", q, QueryOptions(0.1, 20)) for q in queries]
    assert after == before
    for h in handles:
        ray.kill(h)
