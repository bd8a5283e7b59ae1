"""Service endpoints and the WebSocket event stream over real HTTP (checklist items 65, 67)."""

from __future__ import annotations

import json

import pytest
import requests
from websockets.sync.client import connect

from tests.e2e.kato_client import KatoClient

pytestmark = pytest.mark.integration


def test_root_health_and_status(base_url):
    root = requests.get(f"{base_url}/").json()
    assert root["service"] == "KATO API" and root["session_support"] is True and root["docs"] == "/docs"
    health = requests.get(f"{base_url}/health")
    assert health.status_code == 200
    body = health.json()
    assert {"status", "processor_status", "service_name", "uptime_seconds", "issues", "metrics_collected",
            "last_collection", "active_sessions", "timestamp"} <= set(body)
    assert body["uptime_seconds"] > 0 and body["status"] in ("healthy", "degraded", "unhealthy")
    status = requests.get(f"{base_url}/status").json()
    assert status["base_processor_id"] == "kato" and status["uptime_seconds"] > 0
    assert status["processors"]["total_processors"] == 2


def test_metrics_count_requests_without_stale_cache(base_url):
    before = requests.get(f"{base_url}/metrics").json()
    for _ in range(5):
        requests.get(f"{base_url}/health")
    after = requests.get(f"{base_url}/metrics").json()
    assert after["performance"]["total_requests"] >= before["performance"]["total_requests"] + 6
    assert set(after) >= {"timestamp", "sessions", "performance", "resources", "databases", "rates",
                          "processor_manager"}
    for key in ("cpu_percent", "memory_percent", "disk_percent"):
        assert 0 <= after["resources"][key] <= 100


def test_stats_and_named_metrics(base_url):
    assert requests.get(f"{base_url}/stats").json()["time_range_minutes"] == 10
    stats = requests.get(f"{base_url}/stats", params={"minutes": 3}).json()
    assert stats["time_range_minutes"] == 3
    assert {"kato_cpu_usage_percent", "kato_memory_usage_percent", "kato_requests_total",
            "kato_request_duration_seconds"} <= set(stats["time_series"])
    requests.get(f"{base_url}/health")
    found = requests.get(f"{base_url}/metrics/response_time").json()
    assert found["metric_name"] == "response_time" and found["statistics"]["count"] >= 1
    missing = requests.get(f"{base_url}/metrics/no_such_metric")
    assert missing.status_code == 404 and "No data available" in missing.json()["detail"]


def test_websocket_snapshot_ping_and_session_events(base_url):
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
