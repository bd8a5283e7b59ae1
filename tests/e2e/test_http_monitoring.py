"""Service endpoints and the WebSocket event stream over real HTTP (checklist items 65, 67)."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.kato_client import assert_websocket_events

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
    assert_websocket_events(base_url)
