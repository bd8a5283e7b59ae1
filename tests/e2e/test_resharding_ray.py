"""Resharding the real service (``kato-cluster up``: Ray shard actors, each with its own chdb directory): a start
with another shard count, ``kato-cluster reshard`` while clients learn and predict, the admin endpoint, and a
service killed in the middle of a move."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cluster.ops.launcher import start_detached, stop_detached
from cluster.ops.ports import free_port
from schema.settings import Settings
from tests.e2e.kato_client import KatoClient
from tests.e2e.test_durability import NODE, Ledger, descendants, learner, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STATIC_NODE = "reshard_static"
CORPUS = [[[f"s{i}"], [f"t{i % 5}", "mid"], [f"u{i}"]] for i in range(30)]


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def start(settings: Settings) -> subprocess.Popen:
    # Two replicas: one runs the reshard, the other learns of the new map from a refused learn or query. Small
    # chunks: a copy takes long enough (hundreds of round trips) for the tests to cut it short.
    with environment(KATO_MIN_REPLICAS="2", KATO_MAX_REPLICAS="2", KATO_RESHARD_CHUNK_BUCKETS="16"):
        return start_detached(settings, timeout=300)


def stop(settings: Settings, process: subprocess.Popen) -> None:
    stop_detached(settings.data_dir)
    process.wait(timeout=60)


def shard_counts(url: str, kb_id: str) -> dict[str, int]:
    body = requests.get(f"{url}/status", timeout=30).json()
    return {p["processor_id"]: p["patterns_per_kb"].get(kb_id, 0) for p in body["processors"]["processors"]}


def answers(url: str) -> list[list[tuple[str, float]]]:
    """For each corpus pattern, the predictions after observing its first two events: names and potentials."""
    client = KatoClient(url, node_id=STATIC_NODE)
    found = []
    for events in CORPUS:
        client.clear_stm()
        for event in events[:2]:
            client.observe(event)
        response = client.http.get(client.url("/predictions"), timeout=60)
        response.raise_for_status()
        found.append([(p["name"], p["potential"]) for p in response.json()["predictions"]])
    return found


def exported(url: str, node: str) -> list[str]:
    text = requests.get(f"{url}/bulk/export", params={"node_id": node}, timeout=300).text
    return [json.loads(line)["name"] for line in text.splitlines()]


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[dict]:
    """A service learned with the corpus on 2 shards (then restarted on 3 by the first test)."""
    settings = Settings.from_env({}, data_dir=str(tmp_path_factory.mktemp("reshard")), port=free_port(), shards=2)
    state = {"settings": settings, "url": f"http://{settings.host}:{settings.port}", "process": start(settings)}
    client = KatoClient(state["url"], node_id=STATIC_NODE)
    state["names"] = sorted(client.learn_sequence(events) for events in CORPUS)
    state["before"] = answers(state["url"])
    yield state
    with contextlib.suppress(Exception):
        stop(state["settings"], state["process"])


def test_a_start_with_another_count_reshards_before_serving(service):
    url = service["url"]
    kb_id = f"{STATIC_NODE}_kato"
    assert sum(shard_counts(url, kb_id).values()) == 30 and len(shard_counts(url, kb_id)) == 2
    stop(service["settings"], service["process"])
    service["settings"].shards = 3
    service["process"] = start(service["settings"])
    counts = shard_counts(url, kb_id)
    assert sorted(counts) == ["shard-0", "shard-1", "shard-2"] and counts["shard-2"] > 0
    assert sum(counts.values()) == 30
    assert sorted(exported(url, STATIC_NODE)) == service["names"]
    assert answers(url) == service["before"]  # 30 of 30, each answer as before
    log = (Path(service["settings"].data_dir) / "kato.log").read_text()
    assert "resharding to 3 before serving" in log


def test_the_cli_reshards_while_clients_learn_and_predict(service):
    url = service["url"]
    ledger, stop_event = Ledger(), threading.Event()
    learners = [threading.Thread(target=learner, args=(url, i, ledger, stop_event)) for i in range(2)]
    seen: list[list[list[tuple[str, float]]]] = []
    refused: list[int] = []
    reader = threading.Thread(target=read_until, args=(url, stop_event, seen, refused))
    for thread in (*learners, reader):
        thread.start()
    try:
        time.sleep(2)
        out = subprocess.run([sys.executable, "-m", "cluster.ops.cli", "reshard", "--shards", "4", "--url", url],
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
        time.sleep(2)
    finally:
        stop_event.set()
        for thread in (*learners, reader):
            thread.join(timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "copying shard" in out.stdout and "done: map version" in out.stdout and "write pause" in out.stdout
    assert seen and all(answer == service["before"] for answer in seen)  # the static node, before/during/after
    assert sorted(shard_counts(url, f"{STATIC_NODE}_kato")) == [f"shard-{i}" for i in range(4)]
    assert_ledger(url, ledger)
    status = subprocess.run([sys.executable, "-m", "cluster.ops.cli", "status", "--url", url], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert "shard map version 3: 4 shards" in status.stdout and "last reshard: done" in status.stdout


def read_until(url: str, stop_event: threading.Event, seen: list, refused: list) -> None:
    """The static node's answers again and again; a 503 (Retry-After) is allowed, noted in ``refused``."""
    while not stop_event.is_set():
        try:
            seen.append(answers(url))
        except requests.HTTPError as error:
            assert error.response is not None and error.response.status_code == 503, error
            refused.append(503)


def assert_ledger(url: str, ledger: Ledger) -> None:
    """Every acknowledged learn is there, with each acknowledged learn counted once; no pattern is held twice."""
    assert sum(ledger.acked.values()) > 10, ledger.statuses
    assert set(ledger.statuses) <= {0, 200, 404, 503}, ledger.statuses
    names = exported(url, NODE)
    assert len(names) == len(set(names))  # each on one shard only
    assert set(ledger.acked) <= set(names) <= set(ledger.acked) | set(ledger.unknown)
    assert sum(shard_counts(url, f"{NODE}_kato").values()) == len(names)
    http = requests.Session()
    for name in ledger.acked:
        got = http.get(f"{url}/pattern/{name}", params={"node_id": NODE}, timeout=60).json()["pattern"]
        frequency = got["pattern"]["frequency"]
        assert ledger.acked[name] <= frequency <= ledger.acked[name] + ledger.unknown[name], name


def admin_reshard(url: str, shards: int) -> requests.Response:
    return requests.post(f"{url}/admin/reshard", json={"shards": shards}, timeout=30)


def wait_phase(url: str, phases: tuple[str, ...], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = requests.get(f"{url}/admin/reshard", timeout=30).json()["progress"]
        if progress.get("phase") in phases:
            return progress
        time.sleep(0.05)
    raise AssertionError(f"no phase {phases} in {timeout} s")


def test_a_receiving_shard_killed_mid_move_is_waited_for_and_the_reshard_finishes(service):
    url = service["url"]
    assert admin_reshard(url, 0).status_code == 422
    assert admin_reshard(url, 2).status_code == 202
    wait_phase(url, ("copying",))
    saved = requests.get(f"{url}/admin/reshard", timeout=30).json()["map"]
    current = {shard for shard, _, _ in saved["ranges"]}
    receiver = next(shard for shard, _, _ in saved["target"] if shard in current and shard != 0)
    pids = {p["processor_id"]: p["pid"] for p in requests.get(f"{url}/status", timeout=30).json()[
        "processors"]["processors"]}
    os.kill(pids[f"shard-{receiver}"], signal.SIGKILL)
    progress = wait_phase(url, ("done", "failed"))  # the steps that met the dead shard waited for its restart
    assert progress["phase"] == "done", progress
    assert sorted(shard_counts(url, f"{STATIC_NODE}_kato")) == ["shard-0", "shard-1"]
    merged_away = [pid for shard, pid in pids.items() if shard not in ("shard-0", "shard-1")]
    assert merged_away and all(gone(pid) for pid in merged_away)  # their actors stopped, not only forgotten
    assert answers(url) == service["before"]


def gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_a_service_killed_mid_move_resumes_the_reshard_at_its_next_start(service):
    url, settings = service["url"], service["settings"]
    assert admin_reshard(url, 3).status_code == 202
    wait_phase(url, ("copying",))
    for pid, _ in [*descendants(service["process"].pid), (service["process"].pid, "")]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    service["process"].wait(timeout=30)
    time.sleep(1)
    settings.shards = 3
    service["process"] = start(settings)  # finishes the interrupted split before it serves
    serving(url)
    body = requests.get(f"{url}/admin/reshard", timeout=30).json()
    assert body["map"]["target"] is None and len(body["map"]["ranges"]) == 3
    assert sorted(shard_counts(url, f"{STATIC_NODE}_kato")) == ["shard-0", "shard-1", "shard-2"]
    assert answers(url) == service["before"]
    held = sorted(p.name for p in Path(settings.data_dir).iterdir() if p.name.startswith("shard-"))
    assert held == ["shard-0", "shard-1", "shard-2"]  # the directory of the shard merged away before is gone
    assert requests.post(f"{url}/admin/reshard/abort", timeout=30).status_code == 409  # nothing to abort
