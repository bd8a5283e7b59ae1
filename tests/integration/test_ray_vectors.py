"""Vectors in Ray mode: shard 0's actor owns the index of every node; every ingress replica reaches it, and the
pending buffer lives in Redis, so replicas share one buffer per node and a killed actor loses nothing."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from actors.ray_shard import RayShards, ShardVectorStore, start_shard_actors
from cluster.stores.pattern_log import LogKeys
from cluster.stores.redis_kb import RedisKB
from schema.api import ObservationData
from schema.config import ServerDefaults, effective_config
from schema.naming import vector_name
from schema.placement import even_ranges
from schema.rules import session_logic
from schema.session import SessionState
from serve_app.cluster_backend import ClusterBackend
from tests.unit.vector_scenarios import V0100, V09, V1000

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_replicas_share_one_buffer_and_index_that_survive_the_actor(ray_cluster, embedded_redis, redis_client,
                                                                     tmp_path):
    ray = ray_cluster
    ranges = even_ranges(2)
    namespace = f"test-{uuid.uuid4().hex}"
    handles = start_shard_actors([(r.shard_id, r.lo, r.hi) for r in ranges],
                                 [f"chdb://{tmp_path}/shard-{r.shard_id}/chdb" for r in ranges], namespace,
                                 redis_url=embedded_redis.url)
    replicas = [ClusterBackend(RayShards(handles), ranges, RedisKB(redis_client), ShardVectorStore(handles[0]),
                               log_keys=LogKeys(namespace)) for _ in range(2)]
    config = effective_config({}, ServerDefaults())
    kb_id = f"ray_vectors_{uuid.uuid4().hex[:8]}_kato"
    first, second = (SessionState(session_id=f"s{i}", node_id="n") for i in range(2))

    def observe(state, backend, **body):
        session_logic.observe(state, ObservationData(**body), config, backend, kb_id)
        return state.stm[-1]

    observe(first, replicas[0], vectors=[[1, 0, 0, 0]])
    observe(second, replicas[1], strings=["a"])
    assert session_logic.learn(second, config, replicas[1], kb_id) == ""  # stores nothing, indexes the vector
    assert observe(first, replicas[0], vectors=[[0, 1, 0, 0]]) == [V1000, V0100]
    observe(second, replicas[1], vectors=[[0.9, 0, 0, 0]])  # buffered in Redis while the actor dies

    victim = ray.get(handles[0].pid.remote())
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # until the restarted actor answers
        try:
            if ray.get(handles[0].pid.remote(), timeout=10) != victim:
                break
        except Exception:  # noqa: BLE001 - the actor is restarting
            pass
        assert time.monotonic() < deadline, "shard 0 did not come back"
        time.sleep(0.2)
    assert session_logic.learn(first, config, replicas[0], kb_id).startswith("PTRN|")  # flushes [0.9, 0, 0, 0]
    probe = [0.95, 0, 0, 0]
    seen = [observe(SessionState(session_id=f"p{i}", node_id="n"), backend, vectors=[probe])
            for i, backend in enumerate(replicas)]
    assert seen[0] == seen[1] and set(seen[0]) == {vector_name([probe]), V1000, V09, V0100}
    replicas[0].clear_kb(kb_id)
    assert observe(SessionState(session_id="p3", node_id="n"), replicas[1], vectors=[[1, 0, 0, 0]]) == [V1000]
    for h in handles:
        ray.kill(h)
