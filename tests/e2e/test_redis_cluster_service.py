"""The whole service over HTTP on a real 3-master Redis Cluster: the same answers as on a single Redis, its slot
moved to another master, and that master restarted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
import requests

from cluster.ops.local import start_local
from cluster.ops.ports import free_port
from cluster.stores.key_space import CLUSTER_TAG
from cluster.stores.redis_client import connect
from schema.settings import Settings
from serve_app.api.app import ServiceHolder, build_app
from serve_app.runtime import attach_observability
from tests.e2e.conftest import ServerThread
from tests.e2e.kato_client import KatoClient
from tests.e2e.test_http_predictions import replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster_url(chdb_store, redis_cluster, tmp_path_factory) -> Iterator[str]:
    settings = Settings.from_env({}, data_dir=str(tmp_path_factory.mktemp("kato-on-cluster")),
                                 store=f"chdb://{chdb_store.path}", redis=redis_cluster.url, shards=2,
                                 namespace="on_cluster")
    runtime = start_local(settings)
    holder = ServiceHolder(service=runtime.service)
    attach_observability(holder, runtime.client, redis_cluster.url, runtime.settings)
    try:
        with ServerThread(build_app(holder), free_port()) as server:
            yield server.url
    finally:
        for shard in runtime.shards.shards.values():
            shard.stop_flusher()
        runtime.client.close()


def until_served(call, timeout: float = 20.0):
    """``call()`` until it stops answering 503 (Redis moving under it); any other error fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code != 503:
            response.raise_for_status()
            return response.json()
        assert "Retry-After" in response.headers
        assert time.monotonic() < deadline, f"still 503 after {timeout} s: {response.text}"
        time.sleep(0.2)


def frequency(url: str, node_id: str, name: str) -> int:
    body = until_served(lambda: requests.get(f"{url}/pattern/{name}", params={"node_id": node_id}))["pattern"]
    return body["pattern"]["frequency"] if body["status"] == "okay" else 0


def test_every_key_of_the_service_lives_in_one_slot_of_the_cluster(cluster_url, redis_cluster):
    client = KatoClient(cluster_url)
    for strings in (["a"], ["b"], ["c"]):
        client.observe(strings, emotives={"joy": 1.0})
    assert client.learn().startswith("PTRN|")
    owner = redis_cluster.node_for(CLUSTER_TAG)
    for node in redis_cluster.nodes:
        with redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True) as plain:
            keys = list(plain.scan_iter(count=1000))
        if node is owner:
            assert any(k.startswith(CLUSTER_TAG + client.node_id) for k in keys)
            assert all(k.startswith(CLUSTER_TAG) for k in keys), [k for k in keys if not k.startswith(CLUSTER_TAG)]
        else:
            assert keys == []


@pytest.mark.parametrize(("seed", "config"), [
    (11, {}),
    (12, {"affinity_emotive": "joy", "rank_sort_algo": "bayesian_posterior"}),
])
def test_predictions_on_a_redis_cluster_equal_the_reference(cluster_url, seed, config):
    replay(cluster_url, seed, config)


def test_the_service_follows_its_slot_to_another_master_and_survives_its_restart(cluster_url, redis_cluster):
    client = KatoClient(cluster_url)
    learned = []
    for i in range(12):
        client.observe([f"w{i}"])
        client.observe([f"w{i + 1}", "x"])
        learned.append(client.learn())
    client.observe(["w3"])
    client.observe(["w4", "x"])
    before = client.predictions()
    assert before

    owner = redis_cluster.node_for(CLUSTER_TAG)
    target = next(n for n in redis_cluster.nodes if n is not owner)
    redis_cluster.move_slot(connect(redis_cluster.url).follow.slot, target)
    assert redis_cluster.node_for(CLUSTER_TAG) is target
    moved = until_served(lambda: client.http.get(client.url("/predictions")))
    assert moved["predictions"] == before

    target.restart()  # AOF with fsync always: every acknowledged write comes back
    after = until_served(lambda: client.http.get(client.url("/predictions")))
    assert after["predictions"] == before
    for name in learned:
        assert frequency(cluster_url, client.node_id, name) == 1
    client.clear_stm()
    client.observe(["w0"])
    client.observe(["w1", "x"])
    assert until_served(lambda: client.http.post(client.url("/learn")))["pattern_name"] == learned[0]
    assert frequency(cluster_url, client.node_id, learned[0]) == 2
