"""Acknowledged means durable, on the real service (launcher, Ray, Serve with HAProxy, embedded Redis and chdb):
kill -9 of a shard actor, of an ingress replica and of redis-server, each while learns and a bulk load run;
then kill -9 of the whole service and a start on the same data directory. After each, every acknowledged learn
is retrievable with its frequency, none is counted twice, and no answer was a 5xx other than 503."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cluster.ops.launcher import start_detached, stop_detached
from cluster.ops.ports import free_port
from cluster.ops.transfer import load
from schema.naming import pattern_name
from schema.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODE = "durable_node"
BULK_NODE = "durable_bulk"


class Ledger:
    """What the clients were told: per pattern, acknowledged learns and learns whose outcome is unknown."""

    def __init__(self) -> None:
        self.acked: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.lock = threading.Lock()

    def record(self, name: str, status: int | None) -> None:
        with self.lock:
            self.statuses[status or 0] += 1
            if status == 200:
                self.acked[name] += 1
            else:
                self.unknown[name] += 1


def learner(url: str, index: int, ledger: Ledger, stop: threading.Event) -> None:
    """Learns patterns of its own, each twice, in single requests (observe-sequence with learn_at_end: the
    request is applied whole or not at all)."""
    http = requests.Session()
    session = None
    n = 0
    while not stop.is_set():
        n += 1
        events = [[f"w{index}_{n}"], [f"x{n % 7}", f"y{index}"], ["tail"]]
        for _ in range(2):
            try:
                if session is None:
                    session = http.post(f"{url}/sessions", json={"node_id": NODE}, timeout=30).json()["session_id"]
                body = {"observations": [{"strings": e} for e in events], "learn_at_end": True}
                response = http.post(f"{url}/sessions/{session}/observe-sequence", json=body, timeout=60)
                status = response.status_code
                if status == 200 and response.json()["final_learned_pattern"] != pattern_name(events):
                    status = -1  # answered, with another pattern: flagged by ``check``
                elif status == 404:
                    session = None
            except (requests.RequestException, KeyError, ValueError):
                status = None
            ledger.record(pattern_name(events), status)
            if status != 200:
                time.sleep(0.2)


def frequency(http: requests.Session, url: str, node: str, name: str) -> int:
    body = http.get(f"{url}/pattern/{name}", params={"node_id": node}, timeout=60).json()["pattern"]
    return body["pattern"]["frequency"] if body["status"] == "okay" else 0


def check(url: str, ledger: Ledger, bulk_file: Path, bulk_rows: int) -> None:
    http = requests.Session()
    assert sum(ledger.acked.values()) > 20, ledger.statuses
    wrong = []
    for name in set(ledger.acked) | set(ledger.unknown):
        got = frequency(http, url, NODE, name)
        if not ledger.acked[name] <= got <= ledger.acked[name] + ledger.unknown[name]:
            wrong.append((name, ledger.acked[name], ledger.unknown[name], got))
    assert not wrong, f"(pattern, acknowledged, unknown, frequency): {wrong[:10]}"
    exported = [json.loads(line) for line in
                http.get(f"{url}/bulk/export", params={"node_id": BULK_NODE}, timeout=300).text.splitlines()]
    assert len(exported) == bulk_rows and {row["frequency"] for row in exported} == {1}, "bulk rows learned twice"
    assert set(ledger.statuses) <= {0, 200, 404, 503}, ledger.statuses


def serving(url: str, timeout: float = 120.0) -> None:
    """Wait until a session can be created and a learn acknowledged again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sid = requests.post(f"{url}/sessions", json={"node_id": "probe"}, timeout=10).json()["session_id"]
            body = {"observations": [{"strings": ["p1"]}, {"strings": ["p2"]}], "learn_at_end": True}
            if requests.post(f"{url}/sessions/{sid}/observe-sequence", json=body, timeout=30).status_code == 200:
                return
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("the service did not come back")


def descendants(root: int) -> Iterator[tuple[int, str]]:
    """(pid, command line) of every process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        yield pid, command
        todo.extend(children.get(pid, []))


def kill_one(root: int, marker: str) -> int:
    pid = next(pid for pid, command in descendants(root) if marker in command)
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.fixture
def bulk_file(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "bulk.jsonl"
    rows = 30_000
    path.write_text("".join(json.dumps({"events": [[f"b{i}"], [f"c{i % 50}"], ["d"]]}) + "\n" for i in range(rows)))
    return path, rows


def test_acknowledged_learns_survive_kill_9_of_every_process(tmp_path, bulk_file):
    path, rows = bulk_file
    settings = Settings.from_env({}, data_dir=str(tmp_path / "data"), port=free_port(), shards=2,
                                 flush_interval=0.3)
    url = f"http://{settings.host}:{settings.port}"
    process = start_detached(settings, timeout=300)
    ledger, stop = Ledger(), threading.Event()
    try:
        threads = [threading.Thread(target=learner, args=(url, i, ledger, stop)) for i in range(3)]
        loader = threading.Thread(target=load, args=(url, str(path), BULK_NODE, 500, False, 40))
        for thread in [*threads, loader]:
            thread.start()
        for marker in ("ray::ShardActor", "ray::ServeReplica", "redis-server"):
            time.sleep(3)
            kill_one(process.pid, marker)
            serving(url)
        time.sleep(2)
        stop.set()
        for thread in [*threads, loader]:
            thread.join(timeout=600)
        check(url, ledger, path, rows)

        for pid, _ in [*descendants(process.pid), (process.pid, "")]:  # the whole service, at once
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
        time.sleep(1)
        process = start_detached(settings, timeout=300)
        check(url, ledger, path, rows)
    finally:
        stop.set()
        stop_detached(settings.data_dir)
        process.wait(timeout=60)
