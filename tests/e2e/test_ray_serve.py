"""The full service on Ray Serve, started like an operator does (``kato-cluster up --detach``)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from cluster.ops.launcher import running_pid, start_detached, stop_detached
from schema.settings import Settings
from tests.e2e.conftest import free_port, processes_in
from tests.e2e.kato_client import KatoClient, assert_concurrent_observes_are_exact, assert_websocket_events
from tests.e2e.test_http_predictions import replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_service(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("ray-service"))
    settings = Settings.from_env({}, data_dir=data_dir, port=free_port(), shards=2)
    overrides = {"KATO_MIN_REPLICAS": "2", "KATO_MAX_REPLICAS": "2", "KATO_MAX_BODY_BYTES": "1000000"}
    previous = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
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
    out = subprocess.run([sys.executable, "-m", "cluster.ops.cli", "status", "--url", url], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert "shard-0 [buckets 0-32767]" in out.stdout and "shard-1 [buckets 32768-65535]" in out.stdout
    assert "redis: ok" in out.stdout and "shards: ok" in out.stdout and "  Redis layout: kato\n" in out.stdout
    node = re.search(r"^  node ([0-9a-f]{56}) \(127\.0\.0\.1, alive, \d+ CPUs, [\d.]+ GB\): shard-0, shard-1$",
                     out.stdout, re.M)  # the one Ray node holds both
    assert node, out.stdout
    assert re.search(r"shard-0 \[buckets 0-32767\]: .*; index [\d.]+ MB, process \d+ MB", out.stdout), out.stdout


def _listener_name(port: int) -> str:
    """The name of the process listening on 127.0.0.1:``port`` (from /proc: socket inode -> owner)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            fd_dir = f"/proc/{pid}/fd"
            if any(os.readlink(f"{fd_dir}/{fd}") in {f"socket:[{i}]" for i in inodes} for fd in os.listdir(fd_dir)):
                with open(f"/proc/{pid}/comm") as comm:
                    return comm.read().strip()
    return ""


def test_haproxy_serves_the_port_by_default(ray_service):
    """The default ingress: Serve's HAProxy in front of replicas that serve HTTP themselves."""
    url, settings, _ = ray_service
    assert settings.ingress == "haproxy"
    assert _listener_name(settings.port) == "haproxy"
    assert requests.get(f"{url}/").json()["service"] == "KATO API"


def test_websocket_and_bad_input_through_haproxy(ray_service):
    """HAProxy passes the WebSocket upgrade and the service's own 4xx answers through unchanged."""
    url, _, _ = ray_service
    assert_websocket_events(url)
    client = KatoClient(url)
    as_json = {"Content-Type": "application/json"}
    oversize = requests.post(client.url("/observe"), data=b"x" * 1_500_000, headers=as_json)
    assert oversize.status_code == 413 and "exceeds 1000000 bytes" in oversize.json()["detail"]
    malformed = requests.post(client.url("/observe"), data=b'{"strings": [', headers=as_json)
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
    unknown = requests.post(f"{url}/sessions/session-nope/observe", json={"strings": ["a"]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "SESSION_NOT_FOUND"
    assert client.stm() == []


def test_the_classic_proxy_ingress_still_serves(tmp_path):
    settings = Settings.from_env({}, data_dir=str(tmp_path), port=free_port(), shards=1, ingress="proxy")
    process = start_detached(settings, timeout=240)
    try:
        assert _listener_name(settings.port) == "ray::ProxyActor"  # /proc comm: 15 characters at most
        client = KatoClient(f"http://127.0.0.1:{settings.port}")
        client.learn_sequence([["via"], ["the"], ["proxy"]])
        client.observe(["via"])
        client.observe(["the"])
        assert [p["future"] for p in client.predictions()] == [[["proxy"]]]
    finally:
        stop_detached(settings.data_dir)
        process.wait(timeout=60)
    assert processes_in(settings.data_dir) == []


def test_ten_concurrent_observes_with_two_replicas(ray_service):
    url, _, _ = ray_service
    assert_concurrent_observes_are_exact(KatoClient(url))


def test_kato_client_gets_the_reference_answers(ray_service):
    url, _, _ = ray_service
    replay(url, 11, {})
    replay(url, 12, {"recall_threshold": 0.0, "max_predictions": 5, "rank_sort_algo": "similarity"})


def test_shard_crash_under_load_loses_nothing_acknowledged(ray_service):
    url, _, _ = ray_service
    node = "crash_node"
    shards = requests.get(f"{url}/status").json()["processors"]["processors"]
    stop = threading.Event()
    acknowledged: list[str] = []
    statuses: collections.Counter = collections.Counter()
    missing_retry_after: list[str] = []

    def note(response: requests.Response) -> bool:
        statuses[response.status_code] += 1
        if response.status_code == 503 and "Retry-After" not in response.headers:
            missing_retry_after.append(response.url)
        return response.status_code == 200

    def worker(w: int) -> None:
        client = KatoClient(url, node_id=node)
        i = 0
        while not stop.is_set():
            if all(note(client.http.post(client.url("/observe"), json={"strings": [f"w{w}_{i}_{j}"]}))
                   for j in range(2)):
                learned = client.http.post(client.url("/learn"))
                if note(learned):
                    acknowledged.append(learned.json()["pattern_name"])
            note(client.http.get(client.url("/predictions")))
            while not stop.is_set() and not note(client.http.post(client.url("/clear-stm"))):
                time.sleep(0.1)
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    os.kill(shards[0]["pid"], signal.SIGKILL)
    before_kill = len(acknowledged)
    time.sleep(12)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    # a call in flight on the killed shard is refused (503, Retry-After); later ones wait for its restart
    assert set(statuses) <= {200, 503}, statuses
    assert not missing_retry_after
    assert before_kill > 10 and len(acknowledged) > before_kill + 10  # learns went on across the restart
    exported = {json.loads(line)["name"] for line in
                requests.get(f"{url}/bulk/export", params={"node_id": node}).text.splitlines() if line}
    assert set(acknowledged) <= exported
    restarted = requests.get(f"{url}/status").json()["processors"]["processors"][0]["pid"]
    assert restarted != shards[0]["pid"]


def test_learned_patterns_survive_a_restart(ray_service, tmp_path):
    url, settings, process = ray_service
    client = KatoClient(url)
    client.learn_sequence([["keep"], ["this"], ["forever"]])
    stop_detached(settings.data_dir)
    process.wait(timeout=30)
    assert running_pid(settings.data_dir) is None
    assert processes_in(settings.data_dir) == []  # the embedded Redis too: Ray's native SIGTERM handler skipped it
    restarted = start_detached(settings, timeout=240)
    try:
        again = KatoClient(url, node_id=client.node_id)
        again.observe(["keep"])
        again.observe(["this"])
        assert [p["future"] for p in again.predictions()] == [[["forever"]]]
    finally:
        stop_detached(settings.data_dir)
        restarted.wait(timeout=30)
