"""A learn does not wait for the pending observe-time predictions: its commit keeps what it overwrites for them
(``cluster.stores.kb_overlay``), and they are computed later over the KB as their observe saw it. Checked
against the reference, which computes them inside every observe, over the real engines (chdb, Redis)."""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from actors.stored_shard import FlushPolicy
from cluster.ops.local import local_shard_factory
from cluster.stores.kb_overlay import next_overlay_key, overlay_key
from cluster.stores.key_space import hash_tag
from cluster.stores.pattern_layout import LAYOUTS
from cluster.stores.redis_kb import RedisKB
from cluster.stores.sessions import SessionStore, pending_key, predictions_key
from cluster.stores.shard_map import ShardMapStore
from schema.api import CreateSessionRequest, ObservationData, ObservationSequenceRequest
from schema.learning import make_pattern
from schema.placement import ShardMap
from schema.rules.query import QueryOptions
from schema.rules.reference_kato import ReferenceKato, ReferenceSession
from schema.rules.session_logic import PendingView
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards
from serve_app.pending_predictions import SettleWorker
from serve_app.service import KatoService
from serve_app.topology import shard_ranges
from tests.integration.redis_keys import kb_key
from tests.unit.kato_helpers import as_json

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")  # each Redis test runs on a single server and on a Redis Cluster

WORDS = [f"v{i}" for i in range(10)]
CONFIGS = [{}, {"max_predictions": 3, "recall_threshold": 0.3}, {"affinity_emotive": "joy"},
           {"recall_threshold": 0.0, "max_predictions": 2}]


@pytest.fixture(params=LAYOUTS)
def service(chdb_store, redis_client, pattern_log, request) -> Iterator[KatoService]:
    """Two in-process shards, per-pattern values in either Redis layout; the background settler never runs, so
    every record is computed after what followed its observe (when cognition-data reads it)."""
    maps = ShardMapStore(redis_client, pattern_log.keys.namespace)
    shard_map = maps.initialize(ShardMap.even(2))
    factory = local_shard_factory(chdb_store, pattern_log, maps, FlushPolicy(interval=0.05, retry_seconds=0.1))
    shards = LocalShards([factory(*r) for r in shard_ranges(shard_map)], factory=factory)
    backend = ClusterBackend(shards, shard_map.ranges, RedisKB(redis_client, layout=request.param),
                             log_keys=pattern_log.keys, maps=maps)
    kato = KatoService(SessionStore(redis_client), backend)
    kato.settler = SettleWorker(kato.pending, delay=3600.0)
    yield kato
    for shard in shards.shards.values():
        shard.stop_flusher()


def _observation(rng: random.Random) -> dict[str, Any]:
    fields: dict[str, Any] = {"strings": rng.sample(WORDS, rng.randint(1, 3))}
    if rng.random() < 0.4:
        # binary fractions: Redis adds affinity in long double, the reference in double; these sums are exact in both
        fields["emotives"] = {rng.choice(["joy", "fear"]): rng.choice([-1.0, -0.5, -0.25, 0.125, 0.5, 0.75, 1.0])}
    if rng.random() < 0.2:
        fields["metadata"] = {"tag": [rng.choice("abc")]}
    return fields


class Pair:
    """One session of the service and its reference twin."""

    def __init__(self, service: KatoService, reference: ReferenceSession, node_id: str, config: dict[str, Any]):
        self.service = service
        self.reference = reference
        self.sid = service.create_session(CreateSessionRequest(node_id=node_id, config=config))["session_id"]

    def observe(self, fields: dict[str, Any]) -> None:
        got = self.service.observe(self.sid, ObservationData(**fields))
        assert got["auto_learned_pattern"] == self.reference.observe(**fields)["auto_learned_pattern"]

    def observe_sequence(self, items: list[dict[str, Any]], **flags: bool) -> None:
        got = self.service.observe_sequence(self.sid, ObservationSequenceRequest(observations=items, **flags))
        want = self.reference.observe_sequence(observations=items, **flags)
        assert got["auto_learned_patterns"] == want["auto_learned_patterns"]

    def learn(self) -> None:
        if self.reference.state.stm:
            assert self.service.learn(self.sid)["pattern_name"] == self.reference.learn()

    def clear_stm(self) -> None:
        self.service.clear_stm(self.sid)
        self.reference.clear_stm()

    def cognition_predictions(self) -> list[dict[str, Any]]:
        return self.service.cognition_data(self.sid)["cognition_data"]["predictions"]

    def predictions(self) -> list[dict[str, Any]]:
        got = self.service.predictions(self.sid)["predictions"]
        assert got == as_json(self.reference.predictions()[0])
        return got


def _step(rng: random.Random, pairs: list[Pair]) -> bool:
    """One random action of one session; True when it compared non-empty predictions."""
    pair = rng.choice(pairs)
    action = rng.random()
    if action < 0.45:
        pair.observe(_observation(rng))
    elif action < 0.6:
        items = [{"strings": rng.sample(WORDS, 1)} for _ in range(rng.randint(2, 5))]
        pair.observe_sequence(items, learn_at_end=rng.random() < 0.7, learn_after_each=rng.random() < 0.2)
    elif action < 0.8:
        pair.learn()
    elif action < 0.85:
        pair.clear_stm()
    elif action < 0.92:
        return bool(pair.predictions())
    else:
        got = pair.cognition_predictions()
        assert got == as_json(pair.reference.state.predictions or [])
        return bool(got)
    return False


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_predictions_of_an_observe_are_over_the_kb_it_saw_whatever_is_learned_after(service, seed):
    """Four sessions of one node learn (new patterns, repeats with emotives and metadata, new symbols) between
    their observes and the reading of those observes' predictions."""
    rng = random.Random(seed)
    node_id = f"views_{uuid.uuid4().hex[:8]}"
    kato = ReferenceKato()
    pairs = [Pair(service, kato.session(node_id, config), node_id, config) for config in CONFIGS]
    compared = sum(_step(rng, pairs) for _ in range(160))
    for pair in pairs:
        assert pair.cognition_predictions() == as_json(pair.reference.state.predictions or [])
    assert compared >= 5


def test_a_learn_keeps_the_overwritten_values_for_the_pending_observe_only(service, redis_client):
    """The overlay names the patterns created since the observe and holds the values the learn overwrote; it
    goes with the record once the predictions are computed."""
    node_id = f"views_{uuid.uuid4().hex[:8]}"
    kato = ReferenceKato()
    learner, watcher = (Pair(service, kato.session(node_id), node_id, {}) for _ in range(2))
    learner.observe({"strings": ["a"]})
    learner.observe({"strings": ["b"]})
    learner.learn()
    watcher.observe({"strings": ["a"]})
    watcher.observe({"strings": ["b"]})
    learner.observe({"strings": ["a"]})
    learner.observe({"strings": ["c"]})
    learner.learn()  # a new pattern and a new symbol, after the watcher's observe
    fields = redis_client.hgetall(overlay_key(watcher.sid, hash_tag(redis_client)))
    kb = learner.reference.kb_id
    assert fields["@record"]
    created = [f for f, v in fields.items() if f.startswith("s" + kb_key(redis_client, kb, "frequency:")) and v == "-"]
    assert len(created) == 1
    pmf = kb_key(redis_client, kb, "symbols:pmf")
    assert fields["s" + kb_key(redis_client, kb, "global:total_unique_patterns")] == "=1"
    assert fields[f"h{len(pmf)}:{pmf}c"] == "-"
    assert fields[f"h{len(pmf)}:{pmf}a"] == "=1"
    assert watcher.cognition_predictions() == as_json(watcher.reference.state.predictions)
    assert [p["future"] for p in watcher.cognition_predictions()] == [[]]
    assert redis_client.exists(overlay_key(watcher.sid, hash_tag(redis_client))) == 0
    assert learner.cognition_predictions() == as_json(learner.reference.state.predictions)


def test_predictions_asked_before_any_learn_are_the_pending_records_answer(service, redis_client, monkeypatch):
    """GET predictions computes what the pending observe would: the record is settled with that answer, not
    computed a second time; after a learn since the observe, or for another config, the record keeps its own."""
    node_id = f"views_{uuid.uuid4().hex[:8]}"
    kato = ReferenceKato()
    learner, watcher = (Pair(service, kato.session(node_id), node_id, {}) for _ in range(2))
    for event in (["a"], ["b"], ["c"]):
        learner.observe({"strings": event})
    learner.learn()
    tag = hash_tag(redis_client)
    computed: list[list[list[str]]] = []
    predict = service.backend.predict

    def counted(kb_id, stm, options, as_of=None):
        computed.append([list(e) for e in stm])
        return predict(kb_id, stm, options, as_of)

    monkeypatch.setattr(service.backend, "predict", counted)
    watcher.observe({"strings": ["a"]})
    watcher.observe({"strings": ["b"]})
    answered = watcher.predictions()
    assert answered and redis_client.exists(pending_key(watcher.sid, tag)) == 1  # nothing written by the GET
    assert watcher.cognition_predictions() == answered and len(computed) == 1
    assert json.loads(redis_client.get(predictions_key(watcher.sid, tag))) == answered

    watcher.observe({"strings": ["c"]})
    watcher.predictions()
    for event in (["a"], ["b"], ["d"]):
        learner.observe({"strings": event})
    learner.learn()  # after the watcher's observe and its GET: the record must not take the GET's answer
    assert watcher.cognition_predictions() == as_json(watcher.reference.state.predictions)
    assert len(computed) == 3

    for limit in (1, 2):  # the record is computed with one config, the predictions asked with another
        service.update_config(watcher.sid, {"config": {"max_predictions": limit}})
        watcher.reference.update_config({"max_predictions": limit})
        if limit == 1:
            watcher.observe({"strings": ["d"]})
    watcher.predictions()
    assert watcher.cognition_predictions() == as_json(watcher.reference.state.predictions)
    assert len(computed) == 5


def test_cognition_data_answers_a_record_another_settled_meanwhile(service, monkeypatch):
    """The background settler may store the record's predictions at any moment, between cognition-data's own
    read and its own settle included: the answer is still that record's."""
    node_id = f"views_{uuid.uuid4().hex[:8]}"
    pair = Pair(service, ReferenceKato().session(node_id), node_id, {})
    for event in (["a"], ["b"], ["c"]):
        pair.observe({"strings": event})
    pair.learn()
    pair.observe({"strings": ["a"]})
    first = pair.cognition_predictions()  # settles the first record
    pair.observe({"strings": ["b"]})
    load = service._load

    def load_then_settled_by_another(session_id, *args, **kwargs):
        state = load(session_id, *args, **kwargs)
        service.pending.settle(session_id)
        return state

    monkeypatch.setattr(service, "_load", load_then_settled_by_another)
    second = pair.cognition_predictions()
    assert second == as_json(pair.reference.state.predictions) and second != first


def test_a_settle_during_a_slow_get_waits_for_its_answer(service, redis_client, monkeypatch):
    """The settler reaching a record while a GET still computes the same answer (a large KB: the GET takes longer
    than the settle delay) waits for that answer instead of computing it alongside."""
    node_id = f"views_{uuid.uuid4().hex[:8]}"
    kato = ReferenceKato()
    pair = Pair(service, kato.session(node_id), node_id, {})
    for event in (["a"], ["b"], ["c"]):
        pair.observe({"strings": event})
    pair.learn()
    pair.observe({"strings": ["a"]})
    pair.observe({"strings": ["b"]})
    computing, release = threading.Event(), threading.Event()
    calls: list[str | None] = []
    predict = service.backend.predict

    def slow(kb_id, stm, options, as_of=None):
        calls.append(as_of)
        computing.set()
        assert release.wait(10)
        return predict(kb_id, stm, options, as_of)

    monkeypatch.setattr(service.backend, "predict", slow)
    answers: list[Any] = []
    getter = threading.Thread(target=lambda: answers.append(pair.predictions()))
    getter.start()
    assert computing.wait(10)
    settler = threading.Thread(target=lambda: service.pending.settle(pair.sid))
    settler.start()
    settler.join(0.3)
    assert settler.is_alive() and len(calls) == 1  # waiting, not computing
    release.set()
    getter.join(10)
    settler.join(10)
    assert len(calls) == 1 and answers[0] == as_json(pair.reference.state.predictions or [])
    assert json.loads(redis_client.get(predictions_key(pair.sid, hash_tag(redis_client)))) == answers[0]


def test_a_stored_record_computed_while_a_request_learns_keeps_its_view_and_the_next_one_keeps_its_own(
        service, redis_client):
    """An observe-sequence's learn runs while the session's stored record is still pending, and the background
    worker may compute that record before the request stores its new one: each record keeps its own overlay, so
    neither sees the pattern the request learned."""
    node_id = f"views_{uuid.uuid4().hex[:8]}"
    kato = ReferenceKato()
    pair = Pair(service, kato.session(node_id), node_id, {})
    for events in (["a"], ["b"], ["c"]), (["a"], ["b"], ["d"]):
        for event in events:
            pair.observe({"strings": event})
        pair.learn()
    pair.observe({"strings": ["a"]})
    pair.observe({"strings": ["b"]})  # the stored record: STM [a] [b]
    kb = pair.reference.kb_id
    options = QueryOptions.from_config({})
    stm_next = [["a"], ["b"], ["e"]]
    before_stored, _ = service.backend.predict(kb, [["a"], ["b"]], options)
    before_next, _ = service.backend.predict(kb, stm_next, options)
    learned = make_pattern([["a"], ["b"], ["e"]], [], [])
    service.backend.learn(kb, learned, 5, PendingView(pair.sid, "next-record"))  # the request's learn
    assert service.pending.settle(pair.sid)  # the worker gets to the stored record meanwhile
    stored = json.loads(redis_client.get(predictions_key(pair.sid, hash_tag(redis_client))))
    assert stored == as_json(before_stored) and learned.name not in {p["name"] for p in stored}
    state = service.sessions.get(pair.sid)
    state["pending_predictions"] = {"record": "next-record", "unique_id": "u", "kb_id": kb, "stm": stm_next,
                                    "config": {}}
    service.sessions.save(state)  # the request stores its record, and the overlay its learn made
    assert redis_client.exists(next_overlay_key(pair.sid, hash_tag(redis_client))) == 0
    assert redis_client.hget(overlay_key(pair.sid, hash_tag(redis_client)), "@record") == "next-record"
    got = service.cognition_data(pair.sid)["cognition_data"]["predictions"]
    assert got == as_json(before_next) and learned.name not in {p["name"] for p in got}
