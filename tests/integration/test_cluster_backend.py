"""The cluster backend (shards + chdb + Redis) answers exactly like the in-memory reference KATO."""

from __future__ import annotations

import random

import pytest

from actors.shard import Shard
from actors.stored_shard import StoredShard
from actors.vector_index import NodeVectors, VectorIndex
from cluster.stores.redis_kb import RedisKB
from cluster.stores.vector_buffer import VectorBuffer
from schema.api import ObservationData
from schema.config import ServerDefaults, effective_config
from schema.placement import even_ranges
from schema.rules import session_logic
from schema.rules.memory_backend import MemoryBackend
from schema.rules.query import QueryOptions
from schema.session import SessionState
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards
from tests.unit.test_predictor_differential import assert_same

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")  # each Redis test runs on a single server and on a Redis Cluster


def make_backend(chdb_store, redis_client, pattern_log, shard_count: int) -> ClusterBackend:
    ranges = even_ranges(shard_count)
    shards = LocalShards([StoredShard(Shard(r.shard_id, r.lo, r.hi), chdb_store, pattern_log) for r in ranges])
    return ClusterBackend(shards, ranges, RedisKB(redis_client), node_vectors(chdb_store, redis_client),
                          log_keys=pattern_log.keys)


def node_vectors(chdb_store, redis_client) -> NodeVectors:
    return NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client))


def drive(backend, kb_id: str, rng: random.Random, config: dict) -> list[tuple]:
    """A random session: observations with emotives/metadata, learns; returns the predictions seen."""
    state = SessionState(session_id="s", node_id="n")
    seen = []
    words = [f"w{i}" for i in range(12)]
    for step in range(60):
        strings = rng.sample(words, rng.randint(1, 3))
        emotives = {"joy": round(rng.uniform(-1, 1), 2)} if rng.random() < 0.5 else {}
        metadata = {"step": step} if rng.random() < 0.3 else {}
        session_logic.observe(state, ObservationData(strings=strings, emotives=emotives, metadata=metadata),
                              config, backend, kb_id)
        if rng.random() < 0.3:
            session_logic.learn(state, config, backend, kb_id)
        seen.append(backend.predict(kb_id, state.stm, QueryOptions.from_config(config)))
    return seen


@pytest.mark.parametrize("shard_count", [1, 3])
def test_cluster_backend_matches_reference(chdb_store, redis_client, pattern_log, make_kb_id, shard_count):
    kb_id = make_kb_id("c")
    for seed, extra in ((1, {}), (2, {"recall_threshold": 0.0, "max_predictions": 3}),
                        (3, {"affinity_emotive": "joy", "rank_sort_algo": "confluence"}),
                        (4, {"max_pattern_length": 3, "stm_mode": "ROLLING", "use_token_matching": False})):
        cluster = make_backend(chdb_store, redis_client, pattern_log, shard_count)
        cluster.clear_kb(kb_id)
        config = effective_config({"recall_threshold": 0.1, **extra}, ServerDefaults())
        got = drive(cluster, kb_id, random.Random(seed), config)
        expected = drive(MemoryBackend(), kb_id, random.Random(seed), config)
        assert any(preds for preds, _ in expected)
        for g, e in zip(got, expected):
            assert_same(g, e)


def test_restarted_shards_reload_and_answer_the_same(chdb_store, redis_client, pattern_log, make_kb_id):
    kb_id = make_kb_id("r")
    first = make_backend(chdb_store, redis_client, pattern_log, 2)
    drive(first, kb_id, random.Random(9), effective_config({}, ServerDefaults()))
    stm = [["w1"], ["w2", "w3"]]
    before = first.predict(kb_id, stm, QueryOptions(0.0, 20))
    ranges = even_ranges(2)
    reloaded = [StoredShard(Shard(r.shard_id, r.lo, r.hi), chdb_store, pattern_log) for r in ranges]
    assert sum(s.load() for s in reloaded) >= sum(first.shards.shards[i].count(kb_id) for i in range(2))
    second = ClusterBackend(LocalShards(reloaded), ranges, RedisKB(redis_client),
                            node_vectors(chdb_store, redis_client), log_keys=pattern_log.keys)
    assert second.predict(kb_id, stm, QueryOptions(0.0, 20)) == before
    assert before[0]


def test_finalize_training_matches_reference(chdb_store, redis_client, pattern_log, make_kb_id):
    kb_id = make_kb_id("f")
    cluster = make_backend(chdb_store, redis_client, pattern_log, 2)
    memory = MemoryBackend()
    config = effective_config({}, ServerDefaults())
    drive(cluster, kb_id, random.Random(5), config)
    drive(memory, kb_id, random.Random(5), config)
    assert cluster.finalize_training(kb_id) == memory.kb(kb_id).finalize_training()
    stm = [["w1"], ["w4"]]
    assert_same(cluster.predict(kb_id, stm, QueryOptions()), memory.predict(kb_id, stm, QueryOptions()))


def test_vectors_are_indexed_at_learn_and_recalled(chdb_store, redis_client, pattern_log, make_kb_id):
    kb_id = make_kb_id("v")
    cluster = make_backend(chdb_store, redis_client, pattern_log, 2)
    config = effective_config({}, ServerDefaults())
    state = SessionState(session_id="s", node_id="n")
    session_logic.observe(state, ObservationData(vectors=[[1, 0, 0, 0]]), config, cluster, kb_id)
    session_logic.observe(state, ObservationData(strings=["meow"]), config, cluster, kb_id)
    session_logic.learn(state, config, cluster, kb_id)
    session_logic.observe(state, ObservationData(vectors=[[0.95, 0.05, 0, 0]]), config, cluster, kb_id)
    assert len(state.stm[0]) == 2  # its own symbol plus the learned vector's
    preds, _ = cluster.predict(kb_id, state.stm, QueryOptions())
    assert preds and preds[0]["future"] == [["meow"]]
    cluster.clear_kb(kb_id)
    assert chdb_store.load_vectors(kb_id) == []
