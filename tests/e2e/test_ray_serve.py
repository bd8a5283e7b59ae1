"""The full service on Ray Serve, started like an operator does (``kato-cluster up --detach``)."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys

import pytest
import requests

from cluster.launcher import running_pid, start_detached, stop_detached
from cluster.settings import Settings
from tests.e2e.conftest import free_port
from tests.e2e.kato_client import KatoClient
from tests.e2e.test_http_predictions import replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_service(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("ray-service"))
    settings = Settings.from_env({}, data_dir=data_dir, port=free_port(), shards=2)
    previous = {k: os.environ.get(k) for k in ("KATO_MIN_REPLICAS", "KATO_MAX_REPLICAS")}
    os.environ.update({"KATO_MIN_REPLICAS": "2", "KATO_MAX_REPLICAS": "2"})
    try:
        process = start_detached(settings, timeout=240)
    finally:
        for key, value in previous.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    yield f"http://127.0.0.1:{settings.port}", settings, process
    if running_pid(data_dir) is not None:
        stop_detached(data_dir)
    process.wait(timeout=30)


def test_service_answers_and_status_shows_the_shards(ray_service):
    url, settings, process = ray_service
    assert requests.get(f"{url}/health").status_code == 200
    assert running_pid(settings.data_dir) == process.pid
    out = subprocess.run([sys.executable, "-m", "cluster.cli", "status", "--url", url], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert "shard-0 [buckets 0-32767]" in out.stdout and "shard-1 [buckets 32768-65535]" in out.stdout
    assert "redis: ok" in out.stdout and "shards: ok" in out.stdout


def test_ten_concurrent_observes_with_two_replicas(ray_service):
    url, _, _ = ray_service
    client = KatoClient(url)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda i: requests.post(client.url("/observe"), json={"strings": [f"c{i}"]}).status_code,
                              range(10)))
    assert codes == [200] * 10
    assert sorted(e[0] for e in client.stm()) == sorted(f"c{i}" for i in range(10))


def test_kato_client_gets_the_reference_answers(ray_service):
    url, _, _ = ray_service
    replay(url, 11, {})
    replay(url, 12, {"recall_threshold": 0.0, "max_predictions": 5, "rank_sort_algo": "similarity"})


def test_learned_patterns_survive_a_restart(ray_service, tmp_path):
    url, settings, process = ray_service
    client = KatoClient(url)
    client.learn_sequence([["keep"], ["this"], ["forever"]])
    stop_detached(settings.data_dir)
    process.wait(timeout=30)
    assert running_pid(settings.data_dir) is None
    restarted = start_detached(settings, timeout=240)
    try:
        again = KatoClient(url, node_id=client.node_id)
        again.observe(["keep"])
        again.observe(["this"])
        assert [p["future"] for p in again.predictions()] == [[["forever"]]]
    finally:
        stop_detached(settings.data_dir)
        restarted.wait(timeout=30)
