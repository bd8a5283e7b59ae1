"""The real answers of every endpoint, from a ``KatoService`` over the real engines (chdb, Redis), fit the response
models their routes declare (``schema.responses``), strictly: no coercion, no undeclared key, no missing one."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from actors.stored_shard import FlushPolicy
from actors.vector_index import NodeVectors, VectorIndex
from cluster.ops.local import local_shard_factory
from cluster.stores.redis_kb import RedisKB
from cluster.stores.sessions import SessionStore
from cluster.stores.shard_map import ShardMapStore
from cluster.stores.vector_buffer import VectorBuffer
from schema import responses as r
from schema.placement import ShardMap, rebalanced
from serve_app.api.app import build_app
from serve_app.api.holder import ServiceHolder
from serve_app.cluster_backend import ClusterBackend
from serve_app.local_shards import LocalShards
from serve_app.monitoring import Monitor
from serve_app.resharder import Progress, Resharder, ReshardRunner
from serve_app.service import KatoService
from serve_app.topology import shard_ranges
from tests.unit.test_response_models import AppClient, http_routes, validated

pytestmark = pytest.mark.integration


class CheckedClient(AppClient):
    """Every answer is validated against the model its route declares for its status."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.routes = http_routes(app)
        self.checked: set[tuple[str, str, int]] = set()

    def model_for(self, method: str, path: str, status: int) -> type[BaseModel]:
        route = next(route for m, route in self.routes if m == method and route.path_regex.match(path))
        self.checked.add((method, route.path, status))
        if status == (route.status_code or 200):
            return route.response_model
        return route.responses[status]["model"]

    def request(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        answer = super().request(method, path, **kwargs)
        assert answer.status_code == status, (method, path, answer.status_code, answer.text)
        body = answer.json()
        validated(self.model_for(method, path.split("?")[0], status), body)
        return body

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An answer as it is, unchecked."""
        return super().request(method, path, **kwargs)

    def get(self, path: str, status: int = 200, **kwargs: Any) -> Any:
        return self.request("GET", path, status, **kwargs)

    def post(self, path: str, status: int = 200, **kwargs: Any) -> Any:
        return self.request("POST", path, status, **kwargs)

    def delete(self, path: str, status: int = 200, **kwargs: Any) -> Any:
        return self.request("DELETE", path, status, **kwargs)


@pytest.fixture
def client(chdb_store, redis_client, pattern_log):
    """Two in-process shards routed by a saved shard map, so that the service can reshard."""
    maps = ShardMapStore(redis_client, pattern_log.keys.namespace)
    shard_map = maps.initialize(ShardMap.even(2))
    factory = local_shard_factory(chdb_store, pattern_log, maps, FlushPolicy(interval=0.05, retry_seconds=0.1))
    shards = LocalShards([factory(*r) for r in shard_ranges(shard_map)], factory=factory)
    vectors = NodeVectors(VectorIndex(chdb_store), VectorBuffer(redis_client))
    backend = ClusterBackend(shards, shard_map.ranges, RedisKB(redis_client), vectors, log_keys=pattern_log.keys,
                             maps=maps)
    service = KatoService(SessionStore(redis_client), backend)

    def make(progress: Progress) -> Resharder:
        return Resharder(shards, maps, progress)

    service.resharding = ReshardRunner(make, redis_client, pattern_log.keys.namespace, after=backend.refresh_map)
    monitor = Monitor(redis_client)
    yield CheckedClient(build_app(ServiceHolder(service=service, monitor=monitor)))
    monitor.flush()  # its queued request records now, not in the middle of the next test
    for shard in shards.shards.values():
        shard.stop_flusher()


def new_node() -> str:
    return f"resp_{uuid.uuid4().hex[:10]}"


def observe(client: CheckedClient, sid: str, *events: list[str], **fields: Any) -> None:
    for event in events:
        client.post(f"/sessions/{sid}/observe", json={"strings": event, **fields})


def learn(client: CheckedClient, sid: str, *events: list[str], **fields: Any) -> str:
    observe(client, sid, *events, **fields)
    return client.post(f"/sessions/{sid}/learn")["pattern_name"]


def test_session_answers_fit(client):
    node = new_node()
    created = client.post("/sessions", json={"node_id": node, "metadata": {"who": ["me", 1]}, "ttl_seconds": 600,
                                             "config": {"recall_threshold": 0, "affinity_emotive": "joy"}})
    sid = created["session_id"]
    assert created["session_config"]["recall_threshold"] == 0 and isinstance(
        created["session_config"]["recall_threshold"], int)  # an int stays an int
    client.post("/sessions", json={"node_id": node, "ttl_seconds": -5}, status=422)  # beyond the limits
    client.post("/sessions", json={"metadata": []}, status=422)  # invalid: FastAPI's list of issues
    client.get("/sessions/count")
    client.get(f"/sessions/{sid}/exists")
    client.get("/sessions/session-unknown/exists")
    client.get(f"/sessions/{sid}")
    client.get(f"/sessions/{sid}/config")
    client.post(f"/sessions/{sid}/config", json={"config": {"max_predictions": 7, "sort_symbols": "yes"}})
    assert client.get(f"/sessions/{sid}/config")["config"]["sort_symbols"] == "yes"
    client.post(f"/sessions/{sid}/config", json={"max_predictions": 0}, status=400)
    client.post(f"/sessions/{sid}/extend?ttl_seconds=900")
    client.post(f"/sessions/{sid}/extend?ttl_seconds=0", status=422)
    client.post(f"/sessions/{sid}/observe", json={"strings": [None]}, status=422)
    client.post(f"/sessions/{sid}/observe", content=b"{not json", headers={"content-type": "application/json"},
                status=422)
    client.post(f"/sessions/{sid}/config", content=b"\x06\xff|eo", headers={"content-type": "application/json"},
                status=400)
    client.get(f"/sessions/{sid}/percept-data")  # before any observation: {}
    client.post(f"/sessions/{sid}/learn", status=400)
    observe(client, sid, ["a", "b"], emotives={"joy": 0.5}, metadata={"step": 1})
    client.post(f"/sessions/{sid}/observe", json={"vectors": [[1, 2.5]]})
    client.post(f"/sessions/{sid}/observe", json={})
    for flags in ({}, {"learn_after_each": True}, {"learn_at_end": True, "clear_stm_between": True}):
        client.post(f"/sessions/{sid}/observe-sequence",
                    json={"observations": [{"strings": ["x", "y"], "unique_id": "mine"}, {"strings": ["z"]}, {}],
                          **flags})
    client.post(f"/sessions/{sid}/observe-sequence", json={"observations": []})
    observe(client, sid, ["c"])
    client.get(f"/sessions/{sid}/stm")
    client.get(f"/sessions/{sid}/percept-data")
    client.get(f"/sessions/{sid}/cognition-data")
    client.post(f"/sessions/{sid}/clear-stm")
    client.post(f"/sessions/{sid}/clear-all")
    client.delete(f"/sessions/{sid}")
    client.get(f"/sessions/{sid}", status=404)
    client.get(f"/sessions/{sid}/stm", status=404)
    client.delete(f"/sessions/{sid}", status=404)


def test_prediction_answers_fit_before_and_after_finalize_training(client):
    sid = client.post("/sessions", json={"node_id": new_node(), "config": {"recall_threshold": 0}})["session_id"]
    for events in ([["a"], ["b"], ["c"]], [["a", "x"], ["b"]], [["b"], ["c"], ["d"]], [["q"], ["r"]],
                   [["a"], ["b"], ["c"], ["e"]]):
        learn(client, sid, *events, emotives={"joy": 0.25})
    observe(client, sid, ["a"])
    assert client.get(f"/sessions/{sid}/predictions")["predictions"]  # the single-symbol path
    observe(client, sid, ["b"])
    before = client.get(f"/sessions/{sid}/predictions")
    assert before["count"] == 5 and before["future_potentials"]
    assert any(p["fragmentation"] == -1.0 for p in before["predictions"])
    assert client.get(f"/sessions/{sid}/cognition-data")["cognition_data"]["predictions"]
    finalized = client.post(f"/sessions/{sid}/finalize-training")
    assert finalized["patterns_processed"] == 5
    after = client.get(f"/sessions/{sid}/predictions")
    assert after["count"] == 5 and after["predictions"] != before["predictions"]
    client.post(f"/sessions/{sid}/config", json={"max_predictions": 1})
    pruned = client.get(f"/sessions/{sid}/predictions")["predictions"]
    assert len(pruned) == 1 and "_pre_potential" in pruned[0]
    client.post(f"/sessions/{sid}/config", json={"max_predictions": 10, "affinity_emotive": "joy",
                                                 "fuzzy_token_threshold": 0.6})
    observe(client, sid, ["bb"])
    weighted = client.get(f"/sessions/{sid}/predictions")["predictions"]
    assert all(isinstance(p["weighted_snr"], float) for p in weighted)
    assert any(p["anomalies"] for p in weighted)


def test_node_level_and_bulk_answers_fit(client):
    sid = client.post("/sessions", json={"node_id": (node := new_node())})["session_id"]
    name = learn(client, sid, ["hello", "x"], ["world"], emotives={"joy": 0.8}, metadata={"k": 1})
    query = f"?node_id={node}"
    found = client.get(f"/pattern/{name}{query}")
    assert found["pattern"]["status"] == "okay"
    assert client.get(f"/pattern/{name.removeprefix('PTRN|')}{query}")["pattern"]["status"] == "okay"
    assert client.get(f"/pattern/PTRN|{'0' * 40}{query}")["pattern"]["status"] == "error"
    assert client.get(f"/symbols/affinity{query}")["affinities"]
    assert client.get(f"/symbols/stats{query}")["symbols"]["hello"]["frequency"] == 1
    client.get(f"/symbols/hello/affinity{query}")
    client.get("/symbols/unknown/affinity", headers={"x-test-id": "resp"})
    client.get(f"/percept-data{query}")
    client.get(f"/cognition-data{query}")

    other = new_node()
    loaded = client.post("/bulk/learn", json={"node_id": other, "batch_id": "b1", "patterns": [
        {"events": [["p"], ["q"]], "emotives": [{"joy": 1}], "metadata": {"m": ["1", "2"]}, "frequency": 3},
        {"events": [["single"]]}]})
    assert loaded["skipped"] == 1
    assert client.post("/bulk/learn", json={"node_id": other, "batch_id": "b1", "patterns": []})[
        "status"] == "already_applied"
    streamed = client.raw("POST", f"/bulk/learn?node_id={other}&load_id=l1", content=b'{"events": [["s"], ["t"]]}\n',
                          headers={"content-type": "application/x-ndjson"})
    assert streamed.status_code == 200 and validated(r.StreamedLoadResult, streamed.json()).rows == 1
    assert client.get(f"/bulk/loads/l1?node_id={other}")["rows_done"] == 1
    export = client.raw("GET", f"/bulk/export?node_id={other}")
    assert export.headers["content-type"] == "application/x-ndjson"
    lines = export.text.splitlines()
    assert len(lines) == 2 and {validated(r.ExportedPattern, json.loads(line)).frequency for line in lines} == {3, 1}
    imported = client.post("/bulk/import-kato", json={
        "kb_id": f"{other}_kato", "patterns": [{"name": "a" * 40, "events": [["i"], ["j"]]}],
        "keys": {f"{other}_kato:frequency:{'a' * 40}": {"type": "string", "value": 2}}})
    assert imported["patterns_stored"] == 1
    client.post("/bulk/import-kato", json={"kb_id": "a_kato", "keys": {"b_kato:x": {"type": "string", "value": 1}}},
                status=422)


def test_service_answers_fit(client):
    client.post("/sessions", json={"node_id": new_node()})
    root = client.get("/")
    assert isinstance(root["uptime_seconds"], float)
    client.get("/health")
    status = client.get("/status")
    assert status["engines"] == {"redis": True, "shards": True} and len(status["processors"]["processors"]) == 2
    assert status["redis_layout"] == "kato"
    client.get("/metrics")
    stats = client.get("/stats?minutes=5")
    assert stats["time_series"]["kato_requests_total"]
    counted = client.get("/metrics/kato_requests_total")
    assert all(isinstance(p["value"], int) for p in counted["data_points"])  # a count stays an int
    client.get("/metrics/kato_request_duration_seconds?minutes=2")
    client.get("/metrics/no_such_metric", status=404)
    for path in ("/concurrency", "/cache/stats", "/distributed-stm/stats", "/connection-pools"):
        client.get(path)
    client.post("/cache/invalidate")


def test_admin_answers_fit(client, redis_client, pattern_log):
    sid = client.post("/sessions", json={"node_id": new_node()})["session_id"]
    names = [learn(client, sid, [f"a{i}"], [f"b{i}"]) for i in range(12)]
    assert client.post("/admin/reshard", status=202, json={"shards": 3}) == {"status": "started", "to_shards": 3}
    client.post("/admin/reshard", status=422, json={"shards": 0})
    deadline = time.monotonic() + 60
    while (status := client.get("/admin/reshard"))["progress"].get("phase") not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["progress"]["phase"] == "done" and len(status["map"]["ranges"]) == 3, status
    observe(client, sid, ["a3"], ["b3"])
    predicted = [p["name"] for p in client.get(f"/sessions/{sid}/predictions")["predictions"]]
    assert names[3].removeprefix("PTRN|") in predicted  # every pattern still found once it moved
    client.post("/admin/reshard/abort", status=409)  # nothing to roll back
    maps = ShardMapStore(redis_client, pattern_log.keys.namespace)
    current = maps.load()
    assert current is not None
    maps.begin(current, rebalanced(current.ranges, 4))  # a reshard cut short before its first copy
    aborted = client.post("/admin/reshard/abort")
    assert aborted["status"] == "aborted" and len(aborted["map"]["ranges"]) == 3 and aborted["map"]["target"] is None


def test_the_answers_checked_cover_every_route(client, redis_client, pattern_log):
    """The other tests of this module, run here again, reach every HTTP route but the NDJSON export."""
    for test in (test_session_answers_fit, test_prediction_answers_fit_before_and_after_finalize_training,
                 test_node_level_and_bulk_answers_fit, test_service_answers_fit):
        test(client)
    test_admin_answers_fit(client, redis_client, pattern_log)
    reached = {(method, path) for method, path, status in client.checked if status < 300}
    every = {(method, route.path) for method, route in client.routes} - {("GET", "/bulk/export")}
    assert every - reached == set()
