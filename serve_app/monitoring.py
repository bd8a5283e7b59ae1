"""Cluster-wide request/session/database metrics in Redis and the monitoring responses of spec §4.3.

Every HTTP ingress replica owns a ``Monitor`` on the same Redis, so ``/metrics`` counts the requests of the
whole cluster, read fresh on every call (no cache; KATO caches 5 s, the spec asks for ≤ 1 s).

Redis layout (all under ``kato:metrics:``, never under a ``{kb_id}:`` prefix):

- ``kato:metrics:totals``: HASH of lifetime counters (``requests``, ``errors``, ``duration_sum``,
  ``sessions_created``, ``sessions_deleted``, ``session_operations``, ``<db>_operations``, ``<db>_errors``,
  ``<db>_duration_sum``).
- ``kato:metrics:ts:<minute>``: one HASH per wall-clock minute (``minute = int(epoch // 60)``) with fields
  ``<metric>:n`` (samples) and ``<metric>:s`` (sum of the samples), expiring after ``RETENTION_SECONDS``.
  A time-series point is one minute: ``{"timestamp": minute start (epoch s), "value": ...}`` where the value
  is the minute's count for counter metrics and the minute's mean for the others.

Units: ``average_response_time`` and the databases' ``avg_response_time`` are seconds; the ``response_time``
series is milliseconds; ``kato_request_duration_seconds`` is seconds; ``error_rate`` is errors / requests.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import redis

from cluster.stores.key_space import hash_tag

try:  # optional: /proc and shutil fallbacks below cover Linux without it
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

_log = logging.getLogger(__name__)
PREFIX = "kato:metrics:"
TOTALS_KEY = f"{PREFIX}totals"
WRITE_COALESCE_SECONDS = 0.1  # other hosts see a request's metrics at most this much later
TS_PREFIX = f"{PREFIX}ts:"
RETENTION_SECONDS = 2 * 3600
RETENTION_MINUTES = RETENTION_SECONDS // 60


def _package_version() -> str:
    try:
        return importlib.metadata.version("kato-cluster")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


DEFAULT_VERSION = _package_version()
DATABASES = ("clickhouse", "qdrant", "redis")
SESSION_PATH_PREFIX = "/sessions"
_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
CPU_WINDOW_SECONDS = 15.0  # CPU % is averaged over at least this long, so one busy burst is not "degraded"

# Series whose per-minute value is a count; every other series' value is the minute's mean.
COUNTER_SERIES = (
    "kato_requests_total", "kato_errors_total", "sessions_created", "sessions_deleted", "session_operations",
    *(f"{db}_{what}" for db in DATABASES for what in ("operations", "errors")),
)
MEAN_SERIES = (
    "kato_request_duration_seconds", "response_time", "kato_cpu_usage_percent", "kato_memory_usage_percent",
    "kato_disk_usage_percent", *(f"{db}_response_time" for db in DATABASES),
)
TIME_SERIES = COUNTER_SERIES + MEAN_SERIES
_COUNTERS = frozenset(COUNTER_SERIES)
_KNOWN = frozenset(TIME_SERIES)

CPU_DEGRADED_PERCENT = 80.0
MEMORY_UNHEALTHY_PERCENT = 90.0
ERRORS_PER_MINUTE_DEGRADED = 10.0


def health_status(cpu_percent: float | None, memory_percent: float | None,
                  errors_per_minute: float | None) -> tuple[str, list[str]]:
    """KATO's health rule: degraded if CPU > 80 % or > 10 errors/min; unhealthy if memory > 90 %."""
    status, issues = "healthy", []
    if cpu_percent is not None and cpu_percent > CPU_DEGRADED_PERCENT:
        issues.append("High CPU usage")
        status = "degraded"
    if memory_percent is not None and memory_percent > MEMORY_UNHEALTHY_PERCENT:
        issues.append("High memory usage")
        status = "unhealthy"
    if errors_per_minute is not None and errors_per_minute > ERRORS_PER_MINUTE_DEGRADED:
        issues.append("High error rate")
        if status == "healthy":
            status = "degraded"
    return status, issues


def ts_key(minute: int, tag: str = "") -> str:
    """The per-minute time-series hash (``minute`` = epoch seconds // 60; ``tag``: the deployment's hash tag)."""
    return f"{tag}{TS_PREFIX}{minute}"


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _clamp_percent(value: float) -> float:
    return float(min(100.0, max(0.0, value)))


def _num(raw: Any, default: float = 0.0) -> float:
    try:
        return float(raw) if raw is not None else default
    except (TypeError, ValueError):
        return default


def _count(raw: Any) -> int:
    return int(_num(raw))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


# ------------------------------------------------------------------ resource probes (no psutil needed)
def read_proc_cpu_times(path: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``; None where unavailable."""
    try:
        with open(path, encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user/nice]
    total = sum(values[:8])
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)
    return total - idle, total


def read_proc_memory_percent(path: str = "/proc/meminfo") -> float | None:
    """Used memory % (1 - MemAvailable / MemTotal) from ``/proc/meminfo``; None where unavailable."""
    info: dict[str, float] = {}
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[name] = float(parts[0])
    except OSError:
        return None
    total = info.get("MemTotal")
    available = info.get("MemAvailable", info.get("MemFree"))
    if not total or available is None:
        return None
    return _clamp_percent(100.0 * (1.0 - available / total))


def read_disk_percent(path: str = "/") -> float | None:
    """Used disk % of the filesystem holding ``path``."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return _clamp_percent(100.0 * usage.used / usage.total) if usage.total else None


class Monitor:
    """Records metrics into Redis (shared by every replica) and builds the §4.3 monitoring responses."""

    def __init__(self, client: redis.Redis, service_name: str = "kato", version: str = DEFAULT_VERSION,
                 started_at: float | None = None, disk_path: str = "/") -> None:
        self.client = client
        self.tag = hash_tag(client)
        self.totals_key = self.tag + TOTALS_KEY
        self.service_name = service_name
        self.version = version
        self.started_at = time.time() if started_at is None else float(started_at)
        self.disk_path = disk_path
        self.last_collection = self.started_at
        self._resources: dict[str, float] | None = None
        self._cpu_ref: tuple[float, float, float] | None = None  # (monotonic, busy, total) of the window start
        self._cpu_percent = 0.0
        self._queued: list[tuple[str, int, float, float]] = []
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None

    # ------------------------------------------------------------------ recording
    def record_request(self, path: str, status: int, seconds: float) -> None:
        """Count one served request (errors: status >= 500); one pipelined round trip."""
        self._write_requests([(path, int(status), float(seconds), time.time())])

    def record_request_soon(self, path: str, status: int, seconds: float) -> None:
        """``record_request`` off the request path: queued and written by a background thread. Every read of
        the metrics writes this process's queue first, so a host never reports fewer requests than it served."""
        with self._queue_lock:
            self._queued.append((path, int(status), float(seconds), time.time()))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_queued, name="metrics-writer", daemon=True)
                self._writer.start()
        self._wake.set()

    def flush(self) -> None:
        """Write the queued request records now (one pipelined round trip)."""
        with self._flush_lock:
            with self._queue_lock:
                queued, self._queued = self._queued, []
            if queued:
                self._write_requests(queued)

    def _write_queued(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(WRITE_COALESCE_SECONDS)  # gather the requests of the next moment into the same write
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # metrics never fail the service, and this thread must outlive any error
                _log.warning("request metrics were not written", exc_info=True)

    def _write_requests(self, records: list[tuple[str, int, float, float]]) -> None:
        """Add the records (path, status, seconds, time) to the totals and their minutes' series: the records
        are summed here first, so a burst costs one increment per counter, not one per request."""
        counts: Counter[tuple[str, str]] = Counter()
        sums: defaultdict[tuple[str, str], float] = defaultdict(float)
        for path, status, seconds, at in records:
            seconds = max(0.0, seconds)
            key = ts_key(int(at // 60), self.tag)
            counts[(self.totals_key, "requests")] += 1
            sums[(self.totals_key, "duration_sum")] += seconds
            for field in ("kato_requests_total:n", "kato_request_duration_seconds:n", "response_time:n"):
                counts[(key, field)] += 1
            sums[(key, "kato_request_duration_seconds:s")] += seconds
            sums[(key, "response_time:s")] += seconds * 1000.0
            if status >= 500:
                counts[(self.totals_key, "errors")] += 1
                counts[(key, "kato_errors_total:n")] += 1
            if path.startswith(SESSION_PATH_PREFIX):
                counts[(self.totals_key, "session_operations")] += 1
                counts[(key, "session_operations:n")] += 1
        pipe = self.client.pipeline(transaction=False)
        for (key, field), n in counts.items():
            pipe.hincrby(key, field, n)
        for (key, field), total in sums.items():
            pipe.hincrbyfloat(key, field, total)
        for key in {key for key, _ in counts if key != self.totals_key}:
            pipe.expire(key, RETENTION_SECONDS)
        pipe.execute()

    def record_session_event(self, kind: str) -> None:
        """Count a session ``"created"`` or ``"deleted"``."""
        if kind not in ("created", "deleted"):
            raise ValueError(f"unknown session event {kind!r} (expected 'created' or 'deleted')")
        key = ts_key(int(time.time() // 60), self.tag)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.totals_key, f"sessions_{kind}", 1)
        pipe.hincrby(key, f"sessions_{kind}:n", 1)
        pipe.expire(key, RETENTION_SECONDS)
        pipe.execute()

    def record_db(self, name: str, seconds: float, error: bool = False) -> None:
        """Count one database operation of ``name`` (clickhouse, redis or qdrant) and its duration."""
        if name not in DATABASES:
            raise ValueError(f"unknown database {name!r} (expected one of {DATABASES})")
        seconds = max(0.0, float(seconds))
        key = ts_key(int(time.time() // 60), self.tag)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.totals_key, f"{name}_operations", 1)
        pipe.hincrbyfloat(self.totals_key, f"{name}_duration_sum", seconds)
        pipe.hincrby(key, f"{name}_operations:n", 1)
        pipe.hincrby(key, f"{name}_response_time:n", 1)
        pipe.hincrbyfloat(key, f"{name}_response_time:s", seconds)
        if error:
            pipe.hincrby(self.totals_key, f"{name}_errors", 1)
            pipe.hincrby(key, f"{name}_errors:n", 1)
        pipe.expire(key, RETENTION_SECONDS)
        pipe.execute()

    def sample_resources(self, record: bool = True) -> dict[str, float]:
        """This host's ``cpu_percent``, ``memory_percent``, ``disk_percent`` (0–100), appended to the series."""
        cpu = self._cpu()
        if psutil is not None:
            memory = _clamp_percent(psutil.virtual_memory().percent)
        else:
            read = read_proc_memory_percent()
            memory = 0.0 if read is None else read
        disk = read_disk_percent(self.disk_path)
        resources = {"cpu_percent": cpu, "memory_percent": memory, "disk_percent": 0.0 if disk is None else disk}
        self._resources = resources
        self.last_collection = time.time()
        if record:
            key = ts_key(int(self.last_collection // 60), self.tag)
            pipe = self.client.pipeline(transaction=False)
            for series, value in (("kato_cpu_usage_percent", cpu), ("kato_memory_usage_percent", memory),
                                  ("kato_disk_usage_percent", resources["disk_percent"])):
                pipe.hincrby(key, f"{series}:n", 1)
                pipe.hincrbyfloat(key, f"{series}:s", value)
            pipe.expire(key, RETENTION_SECONDS)
            pipe.execute()
        return dict(resources)

    @property
    def last_resources(self) -> dict[str, float] | None:
        """The last ``sample_resources`` result (None before the first sample)."""
        return None if self._resources is None else dict(self._resources)

    def _cpu(self) -> float:
        """System CPU % averaged over a window of ≥ CPU_WINDOW_SECONDS (since boot on the first call)."""
        if psutil is not None:
            times = psutil.cpu_times()
            total = float(sum(getattr(times, f, 0.0) for f in _CPU_FIELDS))  # guest time is inside user/nice
            idle = float(times.idle + getattr(times, "iowait", 0.0))
            sample: tuple[float, float] | None = (total - idle, total)
        else:
            sample = read_proc_cpu_times()
        if sample is None:
            return self._cpu_percent
        now = time.monotonic()
        busy, total = sample
        ref = self._cpu_ref
        if ref is None:
            self._cpu_percent = _clamp_percent(100.0 * _ratio(busy, total))
            self._cpu_ref = (now, busy, total)
        elif now - ref[0] >= CPU_WINDOW_SECONDS and total > ref[2]:
            self._cpu_percent = _clamp_percent(100.0 * (busy - ref[1]) / (total - ref[2]))
            self._cpu_ref = (now, busy, total)
        return self._cpu_percent

    # ------------------------------------------------------------------ reading
    def _read(self, minutes: int = 0) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
        """Totals and the minute buckets overlapping the last ``minutes`` minutes (≥ 2: current and previous)."""
        self.flush()
        now = time.time()
        current = int(now // 60)
        span = min(max(int(minutes), 0), RETENTION_MINUTES)
        first = min(int((now - span * 60) // 60), current - 1)
        buckets = list(range(first, current + 1))
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.totals_key)
        for minute in buckets:
            pipe.hgetall(ts_key(minute, self.tag))
        totals, *hashes = pipe.execute()
        return totals, list(zip(buckets, hashes))

    @staticmethod
    def _per_minute(series: str, buckets: list[tuple[int, dict[str, str]]], now: float) -> float:
        """Sliding 60 s estimate of a counter: current minute + the still-covered share of the previous one."""
        current = int(now // 60)
        by_minute = dict(buckets)
        field = f"{series}:n"
        this_minute = _num(by_minute.get(current, {}).get(field))
        previous = _num(by_minute.get(current - 1, {}).get(field))
        covered = 1.0 - (now - current * 60) / 60.0
        return float(this_minute + previous * covered)

    @staticmethod
    def _series(name: str, buckets: list[tuple[int, dict[str, str]]]) -> list[dict[str, Any]]:
        """One point per minute bucket that has samples of ``name``."""
        points: list[dict[str, Any]] = []
        for minute, fields in buckets:
            n = _count(fields.get(f"{name}:n"))
            if not n:
                continue
            value: float | int = n if name in _COUNTERS else float(_num(fields.get(f"{name}:s")) / n)
            points.append({"timestamp": float(minute * 60), "value": value})
        return points

    def _sections(self, totals: Mapping[str, str], active_sessions: int,
                  resources: Mapping[str, float]) -> dict[str, Any]:
        requests = _count(totals.get("requests"))
        errors = _count(totals.get("errors"))
        databases = {}
        for db in DATABASES:
            ops = _count(totals.get(f"{db}_operations"))
            databases[db] = {"operations": ops, "errors": _count(totals.get(f"{db}_errors")),
                             "avg_response_time": _ratio(_num(totals.get(f"{db}_duration_sum")), ops)}
        return {
            "sessions": {"total_created": _count(totals.get("sessions_created")),
                         "total_deleted": _count(totals.get("sessions_deleted")),
                         "active": int(active_sessions),
                         "operations_total": _count(totals.get("session_operations"))},
            "performance": {"total_requests": requests, "total_errors": errors,
                            "error_rate": _ratio(errors, requests),
                            "average_response_time": _ratio(_num(totals.get("duration_sum")), requests)},
            "resources": {k: float(resources[k]) for k in ("cpu_percent", "memory_percent", "disk_percent")},
            "databases": databases,
        }

    def _rates(self, buckets: list[tuple[int, dict[str, str]]], now: float) -> dict[str, float]:
        requests = self._per_minute("kato_requests_total", buckets, now)
        rates = {"requests_per_second": requests / 60.0, "requests_per_minute": requests,
                 "errors_per_minute": self._per_minute("kato_errors_total", buckets, now),
                 "sessions_per_minute": self._per_minute("sessions_created", buckets, now)}
        for db in DATABASES:
            rates[f"{db}_ops_per_second"] = self._per_minute(f"{db}_operations", buckets, now) / 60.0
        return {k: float(v) for k, v in rates.items()}

    def uptime_seconds(self) -> float:
        """Seconds since this replica started (always > 0)."""
        return max(time.time() - self.started_at, 1e-6)

    # ------------------------------------------------------------------ responses
    def current_status(self, resources: Mapping[str, float] | None = None,
                       errors_per_minute: float | None = None) -> dict[str, Any]:
        """KATO's health-status record (``status``, ``issues``, ``metrics``, ``timestamp``)."""
        resources = resources if resources is not None else self.sample_resources()
        if errors_per_minute is None:
            _, buckets = self._read()
            errors_per_minute = self._per_minute("kato_errors_total", buckets, time.time())
        status, issues = health_status(resources["cpu_percent"], resources["memory_percent"], errors_per_minute)
        return {"status": status, "issues": issues,
                "metrics": {"cpu_percent": float(resources["cpu_percent"]),
                            "memory_percent": float(resources["memory_percent"]),
                            "error_rate_per_min": float(errors_per_minute)},
                "timestamp": _iso_now()}

    def health(self, active_sessions: int, processor_status: str = "healthy") -> dict[str, Any]:
        """``GET /health``."""
        current = self.current_status()
        return {"status": current["status"], "processor_status": processor_status,
                "service_name": self.service_name, "uptime_seconds": self.uptime_seconds(),
                "issues": current["issues"], "metrics_collected": len(TIME_SERIES),
                "last_collection": float(self.last_collection), "active_sessions": int(active_sessions),
                "timestamp": _iso_now()}

    def status(self, sessions: dict[str, Any], processors: dict[str, Any]) -> dict[str, Any]:
        """``GET /status``."""
        return {"status": "healthy", "base_processor_id": self.service_name,
                "uptime_seconds": self.uptime_seconds(), "sessions": sessions, "processors": processors,
                "version": self.version}

    def metrics(self, active_sessions: int, processor_manager: dict[str, Any]) -> dict[str, Any]:
        """``GET /metrics``: cluster-wide totals read fresh from Redis, this host's resources."""
        resources = self.sample_resources()
        totals, buckets = self._read()
        now = time.time()
        return {"timestamp": now, **self._sections(totals, active_sessions, resources),
                "rates": self._rates(buckets, now), "processor_manager": processor_manager}

    def stats(self, minutes: int = 10, processor_manager: dict[str, Any] | None = None,
              current_status: dict[str, Any] | None = None, active_sessions: int = 0) -> dict[str, Any]:
        """``GET /stats?minutes=``: every series over the window plus the /metrics sections as ``summary``."""
        resources = self.sample_resources()
        totals, buckets = self._read(minutes)
        now = time.time()
        if current_status is None:
            errors = self._per_minute("kato_errors_total", buckets, now)
            current_status = self.current_status(resources, errors)
        return {"time_range_minutes": minutes, "timestamp": now,
                "processor_manager": processor_manager if processor_manager is not None else {},
                "current_status": current_status,
                "time_series": {name: self._series(name, buckets) if minutes > 0 else []
                                for name in TIME_SERIES},
                "summary": self._sections(totals, active_sessions, resources)}

    def metric(self, name: str, minutes: int = 10) -> dict[str, Any] | None:
        """``GET /metrics/{name}?minutes=``; None when the series is unknown or has no point in the window."""
        if name not in _KNOWN or minutes <= 0:
            return None
        _, buckets = self._read(minutes)
        now = time.time()
        points = self._series(name, buckets)
        if not points:
            return None
        values = [p["value"] for p in points]
        return {"metric_name": name, "time_range_minutes": minutes, "timestamp": now,
                "statistics": {"count": len(values), "min": min(values), "max": max(values),
                               "avg": float(sum(values) / len(values))},
                "data_points": points}

    def root(self) -> dict[str, Any]:
        """``GET /``."""
        return {"service": "KATO API", "version": self.version,
                "description": "KATO-compatible pattern memory and prediction service, sharded on Ray",
                "docs": "/docs", "health": "/health", "status": "running",
                "uptime_seconds": self.uptime_seconds(), "architecture": "modular", "session_support": True}


def no_data_detail(name: str, minutes: int) -> str:
    """The 404 ``detail`` of ``GET /metrics/{name}`` when ``Monitor.metric`` returns None."""
    return f"No data available for metric '{name}' in the last {minutes} minutes"


__all__ = ["Monitor", "health_status", "no_data_detail", "read_disk_percent", "read_proc_cpu_times",
           "read_proc_memory_percent", "TIME_SERIES", "PREFIX"]
