"""A plain ``requests`` client written against KATO's HTTP API (spec §4), as a KATO user would write it."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import requests
from websockets.sync.client import connect

_ids = itertools.count()


class KatoClient:
    def __init__(self, base_url: str, node_id: str | None = None, config: dict[str, Any] | None = None,
                 **session_fields: Any):
        self.base = base_url
        self.http = requests.Session()
        self.node_id = node_id or f"test_node_{int(time.time() * 1000)}_{next(_ids)}"
        body = {"node_id": self.node_id, **session_fields}
        if config is not None:
            body["config"] = config
        response = self.http.post(f"{self.base}/sessions", json=body)
        response.raise_for_status()
        self.session = response.json()
        self.session_id = self.session["session_id"]

    def url(self, path: str) -> str:
        return f"{self.base}/sessions/{self.session_id}{path}"

    def observe(self, strings=(), vectors=(), emotives=None, metadata=None) -> dict[str, Any]:
        body = {"strings": list(strings), "vectors": [list(v) for v in vectors], "emotives": emotives or {},
                "metadata": metadata or {}}
        response = self.http.post(self.url("/observe"), json=body)
        response.raise_for_status()
        return response.json()

    def observe_sequence(self, observations, **flags) -> dict[str, Any]:
        response = self.http.post(self.url("/observe-sequence"), json={"observations": observations, **flags})
        response.raise_for_status()
        return response.json()

    def learn(self) -> str:
        response = self.http.post(self.url("/learn"))
        if response.status_code == 400 and "empty stm" in str(response.json().get("detail", "")).lower():
            return ""
        response.raise_for_status()
        return response.json()["pattern_name"]

    def stm(self) -> list[list[str]]:
        return self.http.get(self.url("/stm")).json()["stm"]

    def predictions(self) -> list[dict[str, Any]]:
        return self.http.get(self.url("/predictions")).json()["predictions"]

    def update_config(self, config: dict[str, Any]) -> requests.Response:
        return self.http.post(self.url("/config"), json={"config": config})

    def clear_stm(self) -> None:
        self.http.post(self.url("/clear-stm")).raise_for_status()

    def clear_all(self) -> None:
        self.http.post(self.url("/clear-all")).raise_for_status()

    def learn_sequence(self, events) -> str:
        for event in events:
            self.observe(event)
        return self.learn()


def assert_concurrent_observes_are_exact(client: KatoClient, count: int = 10) -> None:
    """``count`` simultaneous observes on one session give exactly those ``count`` events."""
    import concurrent.futures

    def observe(i: int) -> int:
        return requests.post(client.url("/observe"), json={"strings": [f"e{i}"]}).status_code

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        assert list(pool.map(observe, range(count))) == [200] * count
    assert sorted(e[0] for e in client.stm()) == sorted(f"e{i}" for i in range(count))


def assert_websocket_events(base_url: str) -> None:
    """Two subscribers each get the snapshot, a ping is answered, a session's creation and deletion reach both."""
    ws_url = base_url.replace("http://", "ws://") + "/ws/events"
    with connect(ws_url) as first, connect(ws_url) as second:
        for ws in (first, second):
            snapshot = json.loads(ws.recv(timeout=10))
            assert snapshot["event_type"] == "state.snapshot"
            assert snapshot["data"]["system_status"] == "healthy" and "active_sessions" in snapshot["data"]
        first.send("ping")
        assert first.recv(timeout=10) == "pong"
        client = KatoClient(base_url)
        requests.delete(f"{base_url}/sessions/{client.session_id}")
        for ws in (first, second):
            events = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
            mine = [e for e in events if e["data"]["session_id"] == client.session_id]
            assert [e["event_type"] for e in mine] == ["session.created", "session.destroyed"]
            assert mine[0]["data"]["node_id"] == client.node_id
            assert mine[1]["data"]["reason"] == "explicit_delete"
