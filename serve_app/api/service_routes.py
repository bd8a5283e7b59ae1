"""Service endpoints (spec §4.3): description, health, status, metrics, time series and diagnostics."""

# No ``from __future__ import annotations`` here: Serve pickles the app, and FastAPI analyses the routes of an
# included router again in the replica, where a string annotation names nothing (a body becomes a query).

from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from schema.errors import ServiceStarting
from schema.responses import (
    CacheInvalidated,
    CacheStats,
    ConcurrencyInfo,
    ConnectionPools,
    DistributedStmStats,
    ErrorResponse,
    HealthResponse,
    MetricResponse,
    MetricsResponse,
    ServiceDescription,
    StatsResponse,
    StatusResponse,
)
from serve_app.api.documented import UNAVAILABLE
from serve_app.api.holder import Current
from serve_app.monitoring import Monitor, no_data_detail


def plain(body: Any) -> JSONResponse:
    """``body`` sent exactly as FastAPI sends a returned dict with no response model (``jsonable_encoder``, then
    ``JSONResponse``): with a Response returned, the route's ``response_model`` documents the body (OpenAPI) and
    is never applied to it (FastAPI would drop undeclared keys and retype numbers)."""
    return JSONResponse(jsonable_encoder(body))


def processors(current: Current) -> dict[str, Any]:
    """The shards, in KATO's ``processors`` shape (one processor per shard)."""
    shards = current().require().backend.shards.stats()
    return {"total_processors": len(shards), "max_processors": len(shards), "eviction_ttl_seconds": 0,
            "processors": [{"processor_id": f"shard-{s.shard_id}",
                            "node_id": f"buckets {s.bucket_lo}-{s.bucket_hi}", "created_at": None,
                            "last_accessed": None, "access_count": 0, "idle_seconds": 0.0,
                            "patterns_per_kb": s.patterns_per_kb, "index_bytes": s.index_bytes, "pid": s.pid,
                            "ray_node": s.node_id, "rss_bytes": s.rss_bytes,
                            "log": {"rows": s.log_rows, "entries": s.log_entries,
                                    "flush_lag_seconds": s.flush_lag_seconds, "last_flush_error": s.last_flush_error,
                                    "rows_flushed": s.rows_flushed, "store_inserts": s.store_inserts,
                                    "store_parts": s.store_parts}}
                           for s in shards]}


def service_router(current: Current) -> APIRouter:
    router = APIRouter(tags=["service"], responses=UNAVAILABLE)

    def sessions_active() -> int:
        return current().require().sessions.count()

    def monitor() -> Monitor:
        if current().monitor is None:
            raise ServiceStarting("monitoring is starting")
        return current().monitor

    @router.get("/", summary="Service description", response_model=ServiceDescription)
    async def root():
        return plain(monitor().root())

    @router.get("/health", summary="Health of the service", response_model=HealthResponse)
    async def health():
        return plain(await run_in_threadpool(lambda: monitor().health(sessions_active())))

    @router.get("/status", summary="Service status, sessions, shards and engine health",
                response_model=StatusResponse)
    async def status():
        def build() -> dict[str, Any]:
            body = monitor().status({"active": sessions_active()}, processors(current))
            body["engines"] = current().require().engine_health()
            body["shard_map"] = current().require().shard_map_status()
            body["nodes"] = current().require().backend.shards.nodes()
            body["redis_layout"] = current().require().backend.redis_kb.layout.name
            return body
        return plain(await run_in_threadpool(build))

    _metrics_routes(router, current, monitor, sessions_active)
    _diagnostic_routes(router, sessions_active)
    return router


def _metrics_routes(router: APIRouter, current: Current, monitor, sessions_active) -> None:
    @router.get("/metrics", summary="Cluster-wide request, session, resource and database metrics",
                response_model=MetricsResponse)
    async def metrics():
        return plain(await run_in_threadpool(lambda: monitor().metrics(sessions_active(), processors(current))))

    @router.get("/stats", summary="Time series of the last minutes", response_model=StatsResponse)
    async def stats(minutes: int = Query(10, ge=1, le=1440)):
        return plain(await run_in_threadpool(
            lambda: monitor().stats(minutes, processors(current), active_sessions=sessions_active())))

    @router.get("/metrics/{name}", summary="One metric's statistics and data points", response_model=MetricResponse,
                responses={404: {"model": ErrorResponse, "description": "Unknown metric, or no data in the window."}})
    async def metric(name: str, minutes: int = Query(10, ge=1, le=1440)):
        found = await run_in_threadpool(monitor().metric, name, minutes)
        if found is None:
            return JSONResponse({"detail": no_data_detail(name, minutes)}, status_code=404)
        return plain(found)


def _diagnostic_routes(router: APIRouter, sessions_active) -> None:
    @router.get("/concurrency", summary="Diagnostics: request concurrency", response_model=ConcurrencyInfo)
    async def concurrency():
        return plain({"status": "ok", "session_serialisation": "redis lock per session", "cluster_wide": True})

    @router.get("/cache/stats", summary="Diagnostics: caches", response_model=CacheStats)
    async def cache_stats():
        return plain({"status": "ok", "caches": {}})

    @router.post("/cache/invalidate", summary="Diagnostics: invalidate caches (none are kept)",
                 response_model=CacheInvalidated)
    async def cache_invalidate():
        return plain({"status": "ok", "invalidated": 0})

    @router.get("/distributed-stm/stats", summary="Diagnostics: STM storage", response_model=DistributedStmStats)
    async def distributed_stm():
        return plain(await run_in_threadpool(lambda: {"status": "ok", "backend": "redis",
                                                      "active_sessions": sessions_active()}))

    @router.get("/connection-pools", summary="Diagnostics: connections", response_model=ConnectionPools)
    async def connection_pools():
        return plain({"status": "ok", "redis": "connection pool per replica", "clickhouse": "per shard"})
