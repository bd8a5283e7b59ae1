"""Learning and predictions over real HTTP, checked against the in-process reference KATO."""

from __future__ import annotations

import json
import random
import time

import pytest
import redis
import requests

from schema.naming import kb_id_for
from schema.rules.reference_kato import ReferenceKato
from tests.e2e.kato_client import KatoClient
from tests.unit.kato_helpers import as_json

pytestmark = pytest.mark.integration


def replay(base_url: str, seed: int, config: dict) -> None:
    """The same random workload through HTTP and through the reference; every prediction must match."""
    rng = random.Random(seed)
    client = KatoClient(base_url, config=config)
    reference = ReferenceKato().session(client.node_id, config)
    words = [f"t{i}" for i in range(10)]
    compared = 0
    for step in range(50):
        strings = rng.sample(words, rng.randint(1, 3))
        emotives = {"joy": rng.choice([0.5, -1.0, 2.0])} if rng.random() < 0.4 else {}
        metadata = {"k": step} if rng.random() < 0.2 else {}
        got = client.observe(strings, emotives=emotives, metadata=metadata)
        expected = reference.observe(strings, emotives=emotives, metadata=metadata)
        assert got["stm_length"] == expected["stm_length"]
        assert got["auto_learned_pattern"] == expected["auto_learned_pattern"]
        if rng.random() < 0.25:
            assert client.learn() == reference.learn()
        response = client.http.get(client.url("/predictions")).json()
        predictions, futures = reference.predictions()
        assert response["predictions"] == as_json(predictions)
        assert response["future_potentials"] == as_json(futures)
        assert response["count"] == len(predictions)
        compared += bool(predictions)
    assert compared > 10


@pytest.mark.parametrize(("seed", "config"), [
    (1, {}),
    (2, {"recall_threshold": 0.0, "max_predictions": 4}),
    (3, {"affinity_emotive": "joy", "rank_sort_algo": "bayesian_posterior"}),
    (4, {"max_pattern_length": 3, "stm_mode": "ROLLING", "use_token_matching": False}),
    (5, {"fuzzy_token_threshold": 0.5, "filter_pipeline": ["length", "jaccard"], "jaccard_min_overlap": 1}),
])
def test_http_predictions_equal_the_reference(base_url, seed, config):
    replay(base_url, seed, config)


def test_prediction_response_shape(base_url):
    k = KatoClient(base_url)
    k.learn_sequence([["hello"], ["world"], ["test"]])
    k.observe(["hello"])
    k.observe(["world"])
    body = k.http.get(k.url("/predictions"), params={"unique_id": "ignored"}).json()
    assert set(body) == {"predictions", "future_potentials", "session_id", "processor_id", "count", "time",
                         "unique_id"}
    p = body["predictions"][0]
    assert {"name", "type", "frequency", "matches", "past", "present", "future", "missing", "extras", "anomalies",
            "evidence", "confidence", "similarity", "snr", "fragmentation", "emotives", "potential", "entropy",
            "normalized_entropy", "global_normalized_entropy", "confluence", "predictive_information",
            "itfdf_similarity", "tfidf_score", "bayesian_posterior", "bayesian_prior", "bayesian_likelihood",
            "sequence"} <= set(p)
    assert (p["past"], p["present"], p["future"]) == ([], [["hello"], ["world"]], [["test"]])
    assert body["future_potentials"][0]["future"] == [["test"]]
    cognition = k.http.get(k.url("/cognition-data")).json()["cognition_data"]
    assert cognition["predictions"][0]["name"] == p["name"] and cognition["short_term_memory"] == [["hello"], ["world"]]
    percept = k.http.get(k.url("/percept-data")).json()
    assert percept["percept_data"]["strings"] == ["world"] and percept["node_id"] == k.node_id


def test_emotives_metadata_and_frequency_in_kato_redis_layout(base_url, embedded_redis):
    k = KatoClient(base_url)
    for i in range(7):
        k.observe([f"e{i}"], emotives={"v": float(i)}, metadata={"n": 123, "b": True})
    name = k.learn()[5:]
    kb = kb_id_for(k.node_id)
    r = redis.Redis.from_url(embedded_redis.url, decode_responses=True)
    assert [e["v"] for e in json.loads(r.get(f"{kb}:emotives:{name}"))] == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert json.loads(r.get(f"{kb}:metadata:{name}")) == {"n": ["123"], "b": ["True"]}
    for i in range(7):
        k.observe([f"e{i}"])
    k.learn()
    assert r.get(f"{kb}:frequency:{name}") == "2"
    body = requests.get(f"{base_url}/pattern/PTRN|{name}", headers={"X-Node-ID": k.node_id}).json()
    assert body["node_id"] == kb
    pattern = body["pattern"]["pattern"]
    assert body["pattern"]["status"] == "okay" and pattern["frequency"] == 2 and len(pattern["emotives"]) == 5
    assert pattern["pattern_data"] == [[f"e{i}"] for i in range(7)] and pattern["metadata"]["b"] == ["True"]
    missing = requests.get(f"{base_url}/pattern/nope", params={"node_id": k.node_id}).json()
    assert missing == {"pattern": {"status": "error", "message": "Pattern nope not found"}, "node_id": kb}


def test_affinity_endpoints(base_url):
    first = KatoClient(base_url)
    first.observe(["A"], emotives={"joy": 1.0})
    first.observe(["B"], emotives={"joy": 1.0})
    first.learn()
    second = KatoClient(base_url, node_id=first.node_id)
    second.observe(["B"], emotives={"joy": 2.0})
    second.observe(["C"], emotives={"joy": 2.0})
    second.learn()
    headers = {"X-Node-ID": first.node_id}
    affinities = requests.get(f"{base_url}/symbols/affinity", headers=headers).json()["affinities"]
    assert affinities == {"A": {"joy": 1.0}, "B": {"joy": 3.0}, "C": {"joy": 2.0}}
    one = requests.get(f"{base_url}/symbols/B/affinity", headers=headers).json()
    assert one == {"symbol": "B", "affinity": {"joy": 3.0}, "node_id": kb_id_for(first.node_id)}
    assert requests.get(f"{base_url}/symbols/Z/affinity", headers=headers).json()["affinity"] == {}
    stats = requests.get(f"{base_url}/symbols/stats", headers=headers).json()["symbols"]
    assert stats["B"] == {"name": "B", "frequency": 2, "pattern_member_frequency": 2}
    test_node = requests.get(f"{base_url}/symbols/affinity", headers={"x-test-id": "abc"}).json()
    assert test_node["node_id"] == "test_abc_kato"


def test_auto_learn_over_http(base_url):
    k = KatoClient(base_url, config={"max_pattern_length": 3, "stm_mode": "ROLLING"})
    results = [k.observe([x]) for x in "ABCDE"]
    assert [r["auto_learned_pattern"] is not None for r in results] == [False, False, True, True, True]
    assert k.stm() == [["D"], ["E"]]
    seq = KatoClient(base_url, config={"max_pattern_length": 3, "stm_mode": "ROLLING"})
    body = seq.observe_sequence([{"strings": [x]} for x in "ABCDE"])
    assert len(body["auto_learned_patterns"]) == 3 and body["final_stm_length"] == 2
    assert body["status"] == "completed" and body["processor_id"] == seq.node_id


def test_finalize_training_over_http(base_url):
    k = KatoClient(base_url)
    k.learn_sequence([["f1"], ["f2"], ["f3"], ["f3"]])
    body = k.http.post(k.url("/finalize-training")).json()
    assert body["status"] == "completed" and body["patterns_processed"] == 1
    assert body["node_id"] == k.node_id and isinstance(body["time_ms"], float)
    k.observe(["f1"])
    k.observe(["f2"])
    assert k.predictions()[0]["entropy"] == pytest.approx(1.5)


def test_determinism_of_repeated_queries(base_url):
    k = KatoClient(base_url)
    for pattern in ([["a"], ["b"], ["c"]], [["b"], ["a"]], [["a", "b"]], [["c"], ["a"], ["b"]]):
        k.learn_sequence(pattern)
    k.observe(["a"])
    k.observe(["b"])
    first = k.predictions()
    assert all(k.predictions() == first for _ in range(5))


def cognition_predictions(client: KatoClient) -> list:
    response = client.http.get(client.url("/cognition-data"))
    response.raise_for_status()
    return response.json()["cognition_data"]["predictions"]


@pytest.mark.parametrize(("seed", "config"), [
    (21, {}),
    (22, {"recall_threshold": 0.0, "max_predictions": 3, "max_pattern_length": 3, "stm_mode": "ROLLING"}),
    (23, {"max_pattern_length": 2}),
])
def test_observe_time_predictions_equal_the_reference_whatever_changes_the_kb_next(base_url, seed, config):
    """Observe-time predictions are computed after the observe answers, yet cognition-data shows exactly the
    reference's (computed inside the observe), though the other session of the node learns, bulk-learns
    or clears the KB right after, and whether or not the background worker got to them first."""
    rng = random.Random(seed)
    first = KatoClient(base_url, config=config)
    clients = [first, KatoClient(base_url, node_id=first.node_id, config=config)]
    kato = ReferenceKato()
    references = [kato.session(first.node_id, config) for _ in clients]
    words = [f"w{i}" for i in range(6)]
    compared = 0
    for _ in range(100):
        who = rng.randrange(2)
        client, reference = clients[who], references[who]
        action = rng.random()
        if action < 0.5:
            strings = rng.sample(words, rng.randint(1, 2))
            assert client.observe(strings)["auto_learned_pattern"] == reference.observe(strings)["auto_learned_pattern"]
        elif action < 0.6:
            items = [{"strings": rng.sample(words, 1)} for _ in range(rng.randint(1, 3))]
            flags = {"learn_after_each": rng.random() < 0.5}
            got = client.observe_sequence(items, **flags)
            assert got["auto_learned_patterns"] == reference.observe_sequence(observations=items, **flags)[
                "auto_learned_patterns"]
        elif action < 0.75:
            assert client.learn() == (reference.learn() if reference.state.stm else "")
        elif action < 0.8:
            client.clear_stm()
            reference.clear_stm()
        elif action < 0.83:
            client.clear_all()
            reference.clear_all()
        elif action < 0.88:
            time.sleep(0.15)  # past the settle delay: the background worker computes them first
        else:
            got = cognition_predictions(client)
            assert got == as_json(reference.state.predictions or [])
            compared += bool(got)
    for client, reference in zip(clients, references):
        assert cognition_predictions(client) == as_json(reference.state.predictions or [])
    assert compared >= 3


def test_the_background_worker_settles_observe_time_predictions(base_url, embedded_redis):
    from cluster.stores.sessions import kb_pending_key, pending_key, predictions_key

    k = KatoClient(base_url)
    k.learn_sequence([["bg1"], ["bg2"], ["bg3"]])
    k.observe(["bg1"])
    k.observe(["bg2"])
    r = redis.Redis.from_url(embedded_redis.url, decode_responses=True)
    deadline = time.monotonic() + 10
    while r.exists(pending_key(k.session_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.exists(pending_key(k.session_id)) == 0 and not r.sismember(kb_pending_key(kb_id_for(k.node_id)),
                                                                         k.session_id)
    stored = json.loads(r.get(predictions_key(k.session_id)))
    assert [p["future"] for p in stored] == [[["bg3"]]] and stored == cognition_predictions(k)


def test_pending_records_are_told_apart_when_the_client_repeats_a_unique_id(base_url, embedded_redis, holder):
    """Observe-sequence items may carry the client's unique_id; a settler holding an older record must never
    take a newer, otherwise identical one for its own."""
    from cluster.stores.sessions import pending_key

    k = KatoClient(base_url)
    r = redis.Redis.from_url(embedded_redis.url, decode_responses=True)
    records = []
    delay, holder.service.settler.delay = holder.service.settler.delay, 600.0  # keep the records pending
    try:
        for _ in range(2):
            k.clear_stm()
            k.observe_sequence([{"strings": ["same"], "unique_id": "client-id"}])
            records.append(json.loads(r.get(pending_key(k.session_id))))
    finally:
        holder.service.settler.delay = delay
    assert [rec["unique_id"] for rec in records] == ["client-id", "client-id"]
    assert records[0]["stm"] == records[1]["stm"] == [["same"]] and records[0]["record"] != records[1]["record"]
