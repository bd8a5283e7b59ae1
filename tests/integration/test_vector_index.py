"""The cluster's vectors (``actors.vector_index`` over chdb + Redis) answer exactly like the reference's, and
survive a restart: the index is in the store, the pending buffer in Redis."""

from __future__ import annotations

import random

import pytest

from actors.shard import Shard
from actors.stored_shard import StoredShard
from actors.vector_index import NodeVectors, VectorIndex
from cluster.stores.redis_kb import RedisKB
from cluster.stores.vector_buffer import VectorBuffer
from schema.api import ObservationData, ObservationSequenceRequest
from schema.config import ServerDefaults, effective_config
from schema.errors import KatoError
from schema.placement import even_ranges
from schema.rules import session_logic
from schema.rules.memory_backend import MemoryBackend
from schema.session import SessionState
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards

pytestmark = pytest.mark.integration

LATTICE = (-1, 0, 0.1, 0.2, 0.3, 1, 2)


def cluster_backend(chdb_store, redis_client, pattern_log) -> ClusterBackend:
    ranges = even_ranges(2)
    shards = LocalShards([StoredShard(Shard(r.shard_id, r.lo, r.hi), chdb_store, pattern_log) for r in ranges])
    return ClusterBackend(shards, ranges, RedisKB(redis_client),
                          NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client)), log_keys=pattern_log.keys)


def random_vectors(rng: random.Random) -> list[list[float]]:
    shape = rng.random()
    if shape < 0.03:
        return [[1, 2], [1, 2, 3]]  # does not add up: 400, nothing buffered
    if shape < 0.1:
        return [[rng.choice(LATTICE)]]  # length 1: broadcasts in the search
    if shape < 0.18:
        return [[rng.choice(LATTICE) for _ in range(2)]]  # another dimension: dropped at the flush
    if shape < 0.3:
        return [[rng.choice(LATTICE) for _ in range(4)], [rng.choice(LATTICE)]]  # broadcast in the sum
    return [[rng.choice(LATTICE) for _ in range(4)] for _ in range(rng.choice((1, 1, 2)))]


def observation(rng: random.Random) -> dict:
    body: dict = {"vectors": random_vectors(rng)} if rng.random() < 0.75 else {}
    if rng.random() < 0.5 or not body:
        body["strings"] = rng.sample(["a", "b", "c"], rng.randint(1, 2))
    return body


def step(rng: random.Random, backend, kb_id: str, states: list[SessionState], configs: list[dict]):
    """One random operation of one session; returns what it answered (errors as their class name)."""
    who = rng.randrange(len(states))
    state, config = states[who], configs[who]
    action = rng.random()
    try:
        if action < 0.55:
            return session_logic.observe(state, ObservationData(**observation(rng)), config, backend, kb_id,
                                         unique_id="u")
        if action < 0.7:
            request = ObservationSequenceRequest(
                observations=[observation(rng) for _ in range(rng.randint(1, 3))],
                learn_after_each=rng.random() < 0.5, learn_at_end=rng.random() < 0.5,
                clear_stm_between=rng.random() < 0.3)
            answer = session_logic.observe_sequence(state, request, config, backend, kb_id)
            return {**answer, "results": [{**r, "unique_id": None} for r in answer["results"]]}
        if action < 0.85:
            return session_logic.learn(state, config, backend, kb_id)
        if action < 0.92:
            state.clear_short_term()
            return "clear-stm"
        if action < 0.95:
            backend.clear_kb(kb_id) if isinstance(backend, ClusterBackend) else backend.clear(kb_id)
            state.clear_short_term()
            return "clear-all"
        configs[who] = effective_config({"max_pattern_length": rng.choice((0, 0, 1, 2))}, ServerDefaults())
        return "config"
    except KatoError as error:
        return type(error).__name__


def walk(backend, kb_id: str, seed: int, steps: int, restart=None) -> list:
    rng = random.Random(seed)
    states = [SessionState(session_id=f"s{i}", node_id="n") for i in range(3)]
    configs = [effective_config({}, ServerDefaults()) for _ in states]
    seen = []
    for i in range(steps):
        if restart is not None and i % 17 == 16:
            backend = restart(backend)
        answer = step(rng, backend, kb_id, states, configs)
        seen.append((answer, [[list(e) for e in s.stm] for s in states]))
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cluster_vectors_equal_the_reference(chdb_store, redis_client, pattern_log, make_kb_id, seed):
    kb_id = make_kb_id("vec")
    cluster = cluster_backend(chdb_store, redis_client, pattern_log)
    cluster.clear_kb(kb_id)

    def restart(backend):  # a new process: the index reloads from the store, the buffer is still in Redis
        backend.vector_store = NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client))
        return backend

    got = walk(cluster, kb_id, seed, 120, restart)
    expected = walk(MemoryBackend(), kb_id, seed, 120)
    assert sum(1 for answer, _ in expected if isinstance(answer, dict) and answer.get("status") == "okay") > 40
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"step {i}"


def test_buffer_and_index_survive_a_restart(chdb_store, redis_client, make_kb_id):
    kb_id = make_kb_id("restart")
    first = NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client))
    first.drop_kb(kb_id)
    assert first.observe_vector(kb_id, "p", [1, 0, 0, 0]) == []
    assert first.flush_vectors(kb_id) == 1
    assert first.observe_vector(kb_id, "q", [0.1, 0, 0, 0]) == ["p"]  # buffered, not indexed
    second = NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client))  # after a restart
    assert second.observe_vector(kb_id, "r", [0, 0, 0, 0]) == ["p"]
    assert VectorBuffer(redis_client).pending(kb_id) == [("q", [0.1, 0, 0, 0]), ("r", [0, 0, 0, 0])]
    assert second.flush_vectors(kb_id) == 2 and not VectorBuffer(redis_client).has_pending(kb_id)
    third = NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client))
    assert third.observe_vector(kb_id, "s", [0.05, 0, 0, 0]) == ["r", "q", "p"]  # f32 0.1 is 0.1000000015
    assert third.observe_vector(kb_id, "t", [0.5, 0, 0, 0]) == ["q", "p", "r"]  # p and r tie: p came first
    assert third.index.space(kb_id).points.tolist() == second.index.space(kb_id).points.tolist()
    third.drop_kb(kb_id)
    assert chdb_store.load_vectors(kb_id) == [] and not VectorBuffer(redis_client).has_pending(kb_id)


def test_a_store_outage_keeps_the_buffer_until_a_flush_can_store_it(chdb_store, redis_client, make_kb_id):
    from schema.errors import StoreUnavailable

    class Down:
        def insert_vectors(self, *_args, **_kwargs):
            raise StoreUnavailable("down")

        def load_vectors(self, kb_id):
            return chdb_store.load_vectors(kb_id)

        def drop_vectors(self, kb_id):
            chdb_store.drop_vectors(kb_id)

    kb_id = make_kb_id("outage")
    vectors = NodeVectors(VectorIndex(Down()), VectorBuffer(redis_client))  # type: ignore[arg-type]
    vectors.drop_kb(kb_id)
    vectors.observe_vector(kb_id, "p", [1, 0])
    assert vectors.flush_vectors(kb_id) == 0  # indexed in memory, not stored: the buffer keeps it
    assert vectors.observe_vector(kb_id, "q", [0.9, 0]) == ["p"]
    vectors.index.store = chdb_store
    assert vectors.flush_vectors(kb_id) == 2 and [n for n, _, _ in chdb_store.load_vectors(kb_id)] == ["p", "q"]
    assert not VectorBuffer(redis_client).has_pending(kb_id)
