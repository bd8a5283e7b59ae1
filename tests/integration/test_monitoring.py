"""Cluster-wide metrics in a real Redis and the monitoring response shapes of spec §4.3 (checklist 65)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from serve_app.monitoring import (
    PREFIX,
    RETENTION_SECONDS,
    TIME_SERIES,
    TOTALS_KEY,
    Monitor,
    health_status,
    no_data_detail,
    read_disk_percent,
    read_proc_cpu_times,
    read_proc_memory_percent,
    ts_key,
)

pytestmark = pytest.mark.integration

SPEC_SERIES = ("kato_cpu_usage_percent", "kato_memory_usage_percent", "kato_requests_total",
               "kato_request_duration_seconds")
PROCESSORS = {"total_processors": 0, "max_processors": 100, "eviction_ttl_seconds": 3600, "processors": []}


def _is_float(value: object) -> bool:
    return type(value) is float


def _is_int(value: object) -> bool:
    return type(value) is int


def _assert_sections(body: dict, active: int) -> None:
    assert set(body["sessions"]) == {"total_created", "total_deleted", "active", "operations_total"}
    assert all(_is_int(v) for v in body["sessions"].values())
    assert body["sessions"]["active"] == active
    perf = body["performance"]
    assert set(perf) == {"total_requests", "total_errors", "error_rate", "average_response_time"}
    assert _is_int(perf["total_requests"]) and _is_int(perf["total_errors"])
    assert _is_float(perf["error_rate"]) and _is_float(perf["average_response_time"])
    assert set(body["resources"]) == {"cpu_percent", "memory_percent", "disk_percent"}
    for value in body["resources"].values():
        assert _is_float(value) and 0.0 <= value <= 100.0
    assert set(body["databases"]) == {"clickhouse", "qdrant", "redis"}
    for db in body["databases"].values():
        assert set(db) == {"operations", "errors", "avg_response_time"}
        assert _is_int(db["operations"]) and _is_int(db["errors"]) and _is_float(db["avg_response_time"])


def test_totals_are_shared_by_replicas(redis_client):
    a, b = Monitor(redis_client), Monitor(redis_client)
    before = a.metrics(0, {})["performance"]["total_requests"]
    assert before == 0
    for _ in range(3):
        a.record_request("/health", 200, 0.001)
    for _ in range(4):
        b.record_request("/sessions/x/observe", 200, 0.002)
    assert a.metrics(0, {})["performance"]["total_requests"] == 7
    assert b.metrics(0, {})["performance"]["total_requests"] == 7
    # a third replica started later sees the same cluster totals, immediately (no cache)
    c = Monitor(redis_client)
    c.record_request("/health", 200, 0.001)
    assert a.metrics(0, {})["performance"]["total_requests"] == 8


def test_requests_recorded_off_the_request_path_are_written_and_never_missed(redis_client):
    writer, reader = Monitor(redis_client), Monitor(redis_client)
    for status in (200, 200, 503):
        writer.record_request_soon("/sessions/s/observe", status, 0.004)
    perf = writer.metrics(0, {})["performance"]  # a read writes this host's queue first
    assert (perf["total_requests"], perf["total_errors"]) == (3, 1)
    writer.record_request_soon("/health", 200, 0.001)
    deadline = time.monotonic() + 10
    while reader.metrics(0, {})["performance"]["total_requests"] < 4:  # another host: the writer thread
        assert time.monotonic() < deadline, "queued request never written"
        time.sleep(0.01)
    assert reader.metrics(0, {})["performance"]["total_requests"] == 4
    assert redis_client.hget(TOTALS_KEY, "session_operations") in ("3", b"3")


def test_errors_are_5xx_only_and_rates_add_up(redis_client):
    m = Monitor(redis_client)
    samples = [(200, 0.010), (404, 0.020), (499, 0.030), (500, 0.040), (503, 0.100)]
    for status, seconds in samples:
        m.record_request("/health", status, seconds)
    perf = m.metrics(0, {})["performance"]
    assert perf["total_requests"] == 5
    assert perf["total_errors"] == 2
    assert perf["error_rate"] == pytest.approx(2 / 5)
    assert perf["average_response_time"] == pytest.approx(0.2 / 5)


def test_idle_metrics_have_no_division_by_zero(redis_client):
    perf = Monitor(redis_client).metrics(0, {})["performance"]
    assert perf == {"total_requests": 0, "total_errors": 0, "error_rate": 0.0, "average_response_time": 0.0}


def test_sessions_and_databases(redis_client):
    a, b = Monitor(redis_client), Monitor(redis_client)
    a.record_session_event("created")
    b.record_session_event("created")
    b.record_session_event("deleted")
    a.record_request("/sessions", 200, 0.001)
    a.record_request("/sessions/s1/observe", 200, 0.001)
    a.record_request("/health", 200, 0.001)
    a.record_db("redis", 0.002)
    b.record_db("redis", 0.004, error=True)
    a.record_db("clickhouse", 0.5)
    body = a.metrics(active_sessions=1, processor_manager={"total_processors": 3})
    assert body["sessions"] == {"total_created": 2, "total_deleted": 1, "active": 1, "operations_total": 2}
    assert body["databases"]["redis"]["operations"] == 2
    assert body["databases"]["redis"]["errors"] == 1
    assert body["databases"]["redis"]["avg_response_time"] == pytest.approx(0.003)
    assert body["databases"]["clickhouse"] == {"operations": 1, "errors": 0, "avg_response_time": 0.5}
    assert body["databases"]["qdrant"] == {"operations": 0, "errors": 0, "avg_response_time": 0.0}
    assert body["processor_manager"] == {"total_processors": 3}
    with pytest.raises(ValueError):
        a.record_session_event("expired")
    with pytest.raises(ValueError):
        a.record_db("mongodb", 0.1)


def test_metrics_shape(redis_client):
    m = Monitor(redis_client)
    m.record_request("/health", 200, 0.001)
    body = m.metrics(active_sessions=4, processor_manager={})
    assert set(body) == {"timestamp", "sessions", "performance", "resources", "databases", "rates",
                         "processor_manager"}
    assert _is_float(body["timestamp"]) and body["timestamp"] == pytest.approx(time.time(), abs=60)
    _assert_sections(body, active=4)
    rates = body["rates"]
    assert {"requests_per_second", "requests_per_minute", "errors_per_minute", "sessions_per_minute"} <= set(rates)
    assert all(_is_float(v) and v >= 0.0 for v in rates.values())
    assert rates["requests_per_minute"] >= 1.0  # the request above is in the current minute


def test_keys_live_under_the_metrics_prefix_and_expire(redis_client):
    m = Monitor(redis_client)
    m.record_request("/health", 500, 0.001)
    m.record_session_event("created")
    m.record_db("clickhouse", 0.01, error=True)
    m.sample_resources()
    keys = redis_client.keys("*")
    assert keys and all(k.startswith(PREFIX) for k in keys)
    bucket = ts_key(int(time.time() // 60))
    assert redis_client.exists(bucket) or redis_client.exists(ts_key(int(time.time() // 60) - 1))
    series_keys = [k for k in keys if k != f"{PREFIX}totals"]
    assert series_keys and all(0 < redis_client.ttl(k) <= RETENTION_SECONDS for k in series_keys)


def test_health_status_rule():
    assert health_status(5.0, 40.0, 0.0) == ("healthy", [])
    assert health_status(None, None, None) == ("healthy", [])
    assert health_status(80.0, 90.0, 10.0) == ("healthy", [])  # thresholds are strict
    assert health_status(80.1, 40.0, 0.0) == ("degraded", ["High CPU usage"])
    assert health_status(5.0, 40.0, 10.5) == ("degraded", ["High error rate"])
    assert health_status(5.0, 90.5, 0.0) == ("unhealthy", ["High memory usage"])
    assert health_status(95.0, 95.0, 50.0) == ("unhealthy", ["High CPU usage", "High memory usage",
                                                             "High error rate"])


def test_health_shape_and_rule(redis_client):
    m = Monitor(redis_client, service_name="kato-test")
    body = m.health(active_sessions=3)
    assert set(body) == {"status", "processor_status", "service_name", "uptime_seconds", "issues",
                         "metrics_collected", "last_collection", "active_sessions", "timestamp"}
    res = m.last_resources
    assert res is not None
    # the status follows the rule applied to what was just sampled; on an idle box that is "healthy"
    assert (body["status"], body["issues"]) == health_status(res["cpu_percent"], res["memory_percent"], 0.0)
    assert body["processor_status"] == "healthy"
    assert body["service_name"] == "kato-test"
    assert _is_float(body["uptime_seconds"]) and body["uptime_seconds"] > 0
    assert _is_int(body["metrics_collected"]) and body["metrics_collected"] > 0
    assert _is_float(body["last_collection"]) and body["last_collection"] >= m.started_at
    assert body["active_sessions"] == 3
    datetime.fromisoformat(body["timestamp"])
    assert m.health(0, processor_status="unknown")["processor_status"] == "unknown"


def test_health_reports_high_error_rate(redis_client):
    a, b = Monitor(redis_client), Monitor(redis_client)
    for i in range(11):
        (a if i % 2 else b).record_request("/sessions/s/predictions", 503, 0.001)
    body = a.health(active_sessions=0)
    assert "High error rate" in body["issues"]
    assert body["status"] in ("degraded", "unhealthy")  # unhealthy only if memory is also > 90 %


def test_uptime_is_positive_even_at_start(redis_client):
    m = Monitor(redis_client, started_at=time.time() + 5)  # a clock step must not make it <= 0
    assert m.uptime_seconds() > 0
    assert Monitor(redis_client, started_at=100.0).uptime_seconds() == pytest.approx(time.time() - 100.0, abs=5)


def test_status_shape(redis_client):
    m = Monitor(redis_client, service_name="kato", version="9.9.9")
    sessions = {"active_sessions": 2}
    body = m.status(sessions=sessions, processors=PROCESSORS)
    assert body == {"status": "healthy", "base_processor_id": "kato", "uptime_seconds": body["uptime_seconds"],
                    "sessions": sessions, "processors": PROCESSORS, "version": "9.9.9"}
    assert _is_float(body["uptime_seconds"]) and body["uptime_seconds"] > 0


def test_stats_shape_and_minutes_echo(redis_client):
    m = Monitor(redis_client)
    for _ in range(5):
        m.record_request("/health", 200, 0.004)
    current = {"status": "healthy", "issues": []}
    body = m.stats(10, processor_manager={"total_processors": 1}, current_status=current, active_sessions=2)
    assert set(body) == {"time_range_minutes", "timestamp", "processor_manager", "current_status", "time_series",
                         "summary"}
    assert body["time_range_minutes"] == 10
    assert _is_float(body["timestamp"])
    assert body["processor_manager"] == {"total_processors": 1}
    assert body["current_status"] == current
    assert set(SPEC_SERIES) <= set(body["time_series"])
    for points in body["time_series"].values():
        for point in points:
            assert set(point) == {"timestamp", "value"}
            assert _is_float(point["timestamp"])
    # all five requests are in the window, however the minute boundaries fall
    assert sum(p["value"] for p in body["time_series"]["kato_requests_total"]) == 5
    assert all(p["value"] == pytest.approx(0.004) for p in body["time_series"]["kato_request_duration_seconds"])
    assert body["time_series"]["kato_cpu_usage_percent"]  # stats samples resources itself
    assert body["time_series"]["kato_memory_usage_percent"]
    assert set(body["summary"]) == {"sessions", "performance", "resources", "databases"}
    _assert_sections(body["summary"], active=2)
    assert body["summary"]["performance"]["total_requests"] == 5

    assert m.stats(3, {}, current)["time_range_minutes"] == 3
    zero = m.stats(0, {}, current)
    assert zero["time_range_minutes"] == 0 and all(v == [] for v in zero["time_series"].values())


def test_stats_builds_current_status_when_not_given(redis_client):
    body = Monitor(redis_client).stats(10)
    status = body["current_status"]
    assert set(status) == {"status", "issues", "metrics", "timestamp"}
    assert status["status"] in ("healthy", "degraded", "unhealthy")
    assert set(status["metrics"]) == {"cpu_percent", "memory_percent", "error_rate_per_min"}


def test_metric_history(redis_client):
    m = Monitor(redis_client)
    assert m.metric("response_time", 10) is None  # nothing recorded yet
    for seconds in (0.010, 0.020, 0.030):
        m.record_request("/health", 200, seconds)
    body = m.metric("response_time", 10)
    assert body is not None
    assert set(body) == {"metric_name", "time_range_minutes", "timestamp", "statistics", "data_points"}
    assert body["metric_name"] == "response_time"
    assert body["time_range_minutes"] == 10
    assert _is_float(body["timestamp"])
    stats, points = body["statistics"], body["data_points"]
    assert set(stats) == {"count", "min", "max", "avg"}
    assert stats["count"] == len(points) >= 1
    values = [p["value"] for p in points]
    assert stats["min"] == min(values) and stats["max"] == max(values)
    assert stats["avg"] == pytest.approx(sum(values) / len(values))
    assert all(10.0 - 1e-9 <= v <= 30.0 + 1e-9 for v in values)  # per-minute means, in milliseconds
    if len(points) == 1:  # all three in one minute
        assert stats["avg"] == pytest.approx(20.0)

    counts = m.metric("kato_requests_total", 10)
    assert counts is not None and sum(p["value"] for p in counts["data_points"]) == 3
    assert all(type(p["value"]) is int for p in counts["data_points"])

    assert m.metric("no_such_metric", 10) is None
    assert m.metric("response_time:n", 10) is None  # not a way to read raw fields
    assert m.metric("redis_response_time", 10) is None  # known but no data
    assert m.metric("response_time", 0) is None
    assert no_data_detail("nope", 10) == "No data available for metric 'nope' in the last 10 minutes"


def test_metric_window_excludes_older_minutes(redis_client):
    """A point recorded 30 minutes ago (written in the documented layout) counts for 60 minutes, not 10."""
    m = Monitor(redis_client)
    old_minute = int(time.time() // 60) - 30
    redis_client.hset(ts_key(old_minute), mapping={"response_time:n": 2, "response_time:s": 900.0})
    assert m.metric("response_time", 10) is None
    body = m.metric("response_time", 60)
    assert body is not None
    assert body["data_points"] == [{"timestamp": float(old_minute * 60), "value": 450.0}]
    m.record_request("/health", 200, 0.050)
    assert [p["value"] for p in m.metric("response_time", 10)["data_points"]] == [pytest.approx(50.0)]
    assert len(m.stats(60, {}, {})["time_series"]["response_time"]) == 2


def test_resource_samples_feed_the_series(redis_client):
    m = Monitor(redis_client)
    res = m.sample_resources()
    assert set(res) == {"cpu_percent", "memory_percent", "disk_percent"}
    assert all(_is_float(v) and 0.0 <= v <= 100.0 for v in res.values())
    cpu = m.metric("kato_cpu_usage_percent", 5)
    mem = m.metric("kato_memory_usage_percent", 5)
    assert cpu is not None and mem is not None
    assert mem["statistics"]["max"] == pytest.approx(res["memory_percent"])
    assert set(TIME_SERIES) >= set(SPEC_SERIES) | {"response_time"}


def test_root_shape(redis_client):
    body = Monitor(redis_client, version="1.2.3").root()
    assert body == {"service": "KATO API", "version": "1.2.3", "description": body["description"],
                    "docs": "/docs", "health": "/health", "status": "running",
                    "uptime_seconds": body["uptime_seconds"], "architecture": "modular", "session_support": True}
    assert isinstance(body["description"], str) and body["description"]
    assert _is_float(body["uptime_seconds"]) and body["uptime_seconds"] > 0


def test_proc_readers(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert read_proc_cpu_times(str(stat)) == (150.0, 1000.0)  # busy = total - idle - iowait
    assert read_proc_cpu_times(str(tmp_path / "missing")) is None
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n")
    assert read_proc_memory_percent(str(meminfo)) == pytest.approx(75.0)
    assert read_proc_memory_percent(str(tmp_path / "missing")) is None
    disk = read_disk_percent(str(tmp_path))
    assert disk is not None and 0.0 <= disk <= 100.0


def test_a_burst_of_queued_requests_is_counted_exactly(redis_client):
    m = Monitor(redis_client)
    for i in range(40):
        m.record_request_soon("/sessions/s/observe" if i % 2 else "/health", 500 if i % 10 == 0 else 200, 0.002)
    m.flush()
    perf = m.metrics(0, {})["performance"]
    assert (perf["total_requests"], perf["total_errors"]) == (40, 4)
    assert perf["average_response_time"] == pytest.approx(0.002)  # seconds
    assert m.metrics(0, {})["sessions"]["operations_total"] == 20
    assert all(redis_client.ttl(key) > 0 for key in redis_client.scan_iter(match=f"{PREFIX}*ts*"))
