"""The KATO HTTP API as a FastAPI app around ``KatoService`` (spec §4).

The app is built once per process; ``ServiceHolder.service`` is set by whoever hosts it (the Ray Serve
ingress replica, or a plain uvicorn server in single-process mode and tests).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Body, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from redis.exceptions import BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.ray_shard import ShardUnavailable
from cluster.store import StoreUnavailable
from schema.api import (
    BulkLearnRequest,
    CreateSessionRequest,
    KbImportRequest,
    ObservationData,
    ObservationSequenceRequest,
)
from schema.config import ConfigValidationError
from serve_app.access import OPEN_PATHS, nodes_for_token, restrict_to
from serve_app.errors import ApiError, ServiceUnavailable, SessionNotFound
from serve_app.monitoring import no_data_detail
from serve_app.service import KatoService, resolve_node
from serve_app.session_logic import VectorLengthError

SESSION_PATH = re.compile(r"^/sessions/(?P<sid>[^/]+)(?P<rest>/.*)?$")
NOT_A_SESSION = {"count"}


_PROCESS_HOLDER: ServiceHolder | None = None


def process_holder() -> ServiceHolder:
    """This process's holder. Routes look it up at call time: Ray Serve pickles the app into each replica,
    and a holder captured in a closure would be a copy that the replica's constructor never fills."""
    global _PROCESS_HOLDER
    if _PROCESS_HOLDER is None:
        _PROCESS_HOLDER = ServiceHolder()
    return _PROCESS_HOLDER


@dataclass
class ServiceHolder:
    service: KatoService | None = None
    monitor: Any = None  # serve_app.monitoring.Monitor
    events: Any = None  # serve_app.events.EventBus
    api_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024 * 1024

    def require(self) -> KatoService:
        if self.service is None:
            raise ServiceUnavailable("service is starting")
        return self.service


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class PlainJSONResponse(JSONResponse):
    """JSON rendered by orjson (a hundred predictions render ~10x faster than with ``json``); content orjson
    cannot write, such as integers beyond 64 bits in user metadata, goes through ``json``."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _as_response(result: Any) -> Any:
    return PlainJSONResponse(result) if isinstance(result, (dict, list)) else result


def unavailable(detail: str, retry_after: int = 1) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after)})


async def _limited_body(scope: Scope, receive: Receive, limit: int) -> tuple[bool, Receive]:
    """Whether the body is over the limit (its Content-Length, or, without one, the streamed bytes), and the
    ``receive`` the app must use (a read body is replayed to it)."""
    length = Headers(scope=scope).get("content-length")
    if length is not None:
        return length.isdigit() and int(length) > limit, receive
    if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return False, receive
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit:
            return True, receive
        if not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return False, replay


class KatoConventions:
    """Trace and session headers, API keys, the body limit and request metrics, as plain ASGI middleware
    (Starlette's ``BaseHTTPMiddleware`` runs every request in an extra task and stream)."""

    def __init__(self, app: ASGIApp, current: Callable[[], ServiceHolder]) -> None:
        self.app = app
        self.current = current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request = Request(scope)
        path = request.url.path
        trace_id = request.headers.get("x-trace-id") or uuid.uuid4().hex
        extra = [(b"x-trace-id", trace_id.encode("latin-1"))]
        match = SESSION_PATH.match(path)
        if match and match.group("sid") not in NOT_A_SESSION:  # percent-encoded: a path may hold any bytes
            extra.append((b"x-session-id", quote(match.group("sid"), safe="-_.~!$&'()*+,;=:@").encode("latin-1")))
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        holder = self.current()
        response: Response | None = None
        if holder.api_keys and path not in OPEN_PATHS:
            try:
                restrict_to(nodes_for_token(holder.api_keys, request.headers.get("authorization")))
            except ApiError as error:
                response = JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)
        if response is None:
            too_large, receive = await _limited_body(scope, receive, holder.max_body_bytes)
            if too_large:
                response = JSONResponse({"detail": f"request body exceeds {holder.max_body_bytes} bytes"},
                                        status_code=413)
        try:
            await (response or self.app)(scope, receive, send_with_headers)
        finally:
            if holder.monitor is not None:
                holder.monitor.record_request_soon(path, status, time.perf_counter() - start)


def build_app(holder: ServiceHolder | None = None) -> FastAPI:
    """The app; with no ``holder`` its routes serve ``process_holder()`` (how Serve replicas use it)."""
    current = (lambda: holder) if holder is not None else process_holder
    app = FastAPI(title="kato-cluster", version="0.1.0",
                  description="KATO-compatible pattern memory and prediction service, sharded on Ray.")

    async def call(fn, *args):
        """Run blocking service code in a worker thread; JSON bodies are rendered there too (``PlainJSONResponse``:
        the results are JSON-ready, FastAPI's generic encoder would walk them again)."""
        return await run_in_threadpool(lambda: _as_response(fn(*args)))

    app.add_middleware(KatoConventions, current=current)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError):
        return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        """FastAPI's 422 body, with non-finite numbers in the echoed input written as strings (JSON has none).
        A request on an unknown session is a 404 whatever its body, as in KATO, where the session is
        resolved before the body is validated."""
        match = SESSION_PATH.match(request.url.path)
        if match and match.group("sid") not in NOT_A_SESSION and current().service is not None:
            session_id = match.group("sid")
            try:
                if not await call(lambda: current().service.sessions.exists(session_id)["exists"]):
                    return JSONResponse(SessionNotFound(session_id).body(), status_code=404)
            except (RedisConnectionError, RedisTimeoutError, BusyLoadingError):
                return unavailable("Redis is unavailable; retry shortly")
        return JSONResponse({"detail": _finite(jsonable_encoder(error.errors()))}, status_code=422)

    @app.exception_handler(ShardUnavailable)
    async def shard_unavailable(_request: Request, error: ShardUnavailable):
        return unavailable("a shard is restarting; retry shortly")

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_request: Request, error: StoreUnavailable):
        return unavailable(str(error), retry_after=5)

    @app.exception_handler(RedisError)
    async def redis_unavailable(_request: Request, error: RedisError):
        if isinstance(error, (RedisConnectionError, RedisTimeoutError, BusyLoadingError)):
            return unavailable("Redis is unavailable; retry shortly")
        raise error

    @app.exception_handler(VectorLengthError)
    async def vector_lengths(_request: Request, error: VectorLengthError):
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(ConfigValidationError)
    async def config_error(_request: Request, error: ConfigValidationError):
        return JSONResponse({"detail": error.detail()}, status_code=400)

    # ------------------------------------------------------------------ sessions
    @app.post("/sessions", summary="Create a session for a node")
    async def create_session(body: CreateSessionRequest):
        return await call(current().require().create_session, body)

    @app.get("/sessions/count", summary="Number of live sessions")
    async def count_sessions():
        return await call(current().require().count_sessions)

    @app.get("/sessions/{session_id}/exists", summary="Whether a session exists (never extends it)")
    async def session_exists(session_id: str):
        return await call(current().require().session_exists, session_id)

    @app.get("/sessions/{session_id}", summary="Session details, with the remaining TTL")
    async def get_session(session_id: str):
        return await call(current().require().get_session, session_id)

    @app.delete("/sessions/{session_id}", summary="Delete a session (its node's patterns stay)")
    async def delete_session(session_id: str):
        return await call(current().require().delete_session, session_id)

    @app.get("/sessions/{session_id}/config", summary="Effective session configuration")
    async def get_config(session_id: str):
        return await call(current().require().get_config, session_id)

    @app.post("/sessions/{session_id}/config", summary="Update the session configuration")
    async def update_config(session_id: str, body: dict[str, Any] = Body(...)):
        return await call(current().require().update_config, session_id, body)

    @app.post("/sessions/{session_id}/extend", summary="Set the session's expiry to now + ttl_seconds")
    async def extend_session(session_id: str, ttl_seconds: int = Query(3600)):
        return await call(current().require().extend_session, session_id, ttl_seconds)

    @app.post("/sessions/{session_id}/observe", summary="Observe one event")
    async def observe(session_id: str, body: ObservationData):
        return await call(current().require().observe, session_id, body)

    @app.post("/sessions/{session_id}/observe-sequence", summary="Observe a sequence of events")
    async def observe_sequence(session_id: str, body: ObservationSequenceRequest):
        return await call(current().require().observe_sequence, session_id, body)

    @app.get("/sessions/{session_id}/stm", summary="Short-term memory")
    async def stm(session_id: str):
        return await call(current().require().stm, session_id)

    @app.post("/sessions/{session_id}/learn", summary="Learn the STM as a pattern")
    async def learn(session_id: str):
        return await call(current().require().learn, session_id)

    @app.post("/sessions/{session_id}/finalize-training", summary="Precompute whole-pattern entropies")
    async def finalize_training(session_id: str):
        return await call(current().require().finalize_training, session_id)

    @app.post("/sessions/{session_id}/clear-stm", summary="Clear STM and accumulators")
    async def clear_stm(session_id: str):
        return await call(current().require().clear_stm, session_id)

    @app.post("/sessions/{session_id}/clear-all", summary="Wipe the node's long-term memory and this STM")
    async def clear_all(session_id: str):
        return await call(current().require().clear_all, session_id)

    @app.get("/sessions/{session_id}/predictions", summary="Predictions for the current STM")
    async def predictions(session_id: str):
        return await call(current().require().predictions, session_id)

    @app.get("/sessions/{session_id}/percept-data", summary="Last percept of the session")
    async def percept_data(session_id: str):
        return await call(current().require().percept_data, session_id)

    @app.get("/sessions/{session_id}/cognition-data", summary="Cognition snapshot of the session")
    async def cognition_data(session_id: str):
        return await call(current().require().cognition_data, session_id)

    def node_of(request: Request, node_id: str | None) -> str:
        return resolve_node(node_id, request.headers.get("x-test-id"), request.headers.get("x-node-id"))

    @app.post("/bulk/learn", summary="Learn many patterns of a node at once",
              description="Bulk ingest through the batch path: the end state (pattern rows, frequencies, "
                          "emotives, metadata, symbol statistics, affinity) equals learning the patterns one "
                          "by one in order, each `frequency` times. Patterns with fewer than two symbols are "
                          "skipped (their name is empty), as a learn would skip them.")
    async def bulk_learn(body: BulkLearnRequest):
        return await call(current().require().bulk_learn, body)

    @app.get("/bulk/export", summary="Every pattern of a node as JSON lines",
             description="One JSON object per line: name, events, emotives (stored list), metadata, frequency. "
                         "Loading the lines with /bulk/learn into an empty node recreates the patterns.")
    async def bulk_export(request: Request, node_id: str | None = None, kb_id: str | None = None):
        service = current().require()
        rows = await run_in_threadpool(lambda: [json.dumps(row) + "\n" for row in
                                                service.export_kb(node_of(request, node_id), kb_id)])
        return StreamingResponse(iter(rows), media_type="application/x-ndjson")

    @app.post("/bulk/import-kato", summary="Import a KATO knowledge base verbatim (used by import-kato)",
              description="Pattern rows are stored without applying statistics; the given `{kb_id}:*` Redis keys "
                          "are written as they are, so a KATO deployment's statistics carry over exactly.")
    async def bulk_import(body: KbImportRequest):
        return await call(current().require().import_kb, body)

    # ---------------------------------------------------------------- node level

    @app.get("/pattern/{pattern_id}", summary="A stored pattern of the node")
    async def pattern(pattern_id: str, request: Request, node_id: str | None = None):
        return await call(current().require().pattern, node_of(request, node_id), pattern_id)

    @app.get("/symbols/affinity", summary="Affinity of every symbol of the node")
    async def affinities(request: Request, node_id: str | None = None):
        return await call(current().require().affinities, node_of(request, node_id))

    @app.get("/symbols/stats", summary="Frequency statistics of every symbol of the node")
    async def symbol_stats(request: Request, node_id: str | None = None):
        return await call(current().require().symbol_stats, node_of(request, node_id))

    @app.get("/symbols/{symbol}/affinity", summary="Affinity of one symbol")
    async def symbol_affinity(symbol: str, request: Request, node_id: str | None = None):
        return await call(current().require().symbol_affinity, node_of(request, node_id), symbol)

    @app.get("/percept-data", summary="Deprecated: use the session endpoint")
    async def deprecated_percept(request: Request, node_id: str | None = None):
        return await call(current().require().deprecated_percept, node_of(request, node_id))

    @app.get("/cognition-data", summary="Deprecated: use the session endpoint")
    async def deprecated_cognition(request: Request, node_id: str | None = None):
        return await call(current().require().deprecated_cognition, node_of(request, node_id))

    install_monitoring_routes(app, current)
    return app


def install_monitoring_routes(app: FastAPI, current) -> None:
    """Service endpoints: /, /health, /status, /metrics, /stats, /metrics/{name}, diagnostics, /ws/events."""

    def sessions_active() -> int:
        return current().require().sessions.count()

    def monitor():
        if current().monitor is None:
            raise ServiceUnavailable("monitoring is starting")
        return current().monitor

    def processors() -> dict[str, Any]:
        service = current().require()
        shards = service.backend.shards.stats()
        return {"total_processors": len(shards), "max_processors": len(shards), "eviction_ttl_seconds": 0,
                "processors": [{"processor_id": f"shard-{s.shard_id}",
                                "node_id": f"buckets {s.bucket_lo}-{s.bucket_hi}", "created_at": None,
                                "last_accessed": None, "access_count": 0, "idle_seconds": 0.0,
                                "patterns_per_kb": s.patterns_per_kb, "index_bytes": s.index_bytes,
                                "pid": s.pid}
                               for s in shards]}

    @app.get("/", summary="Service description")
    async def root():
        return monitor().root()

    @app.get("/health", summary="Health of the service")
    async def health():
        return await run_in_threadpool(lambda: monitor().health(sessions_active()))

    @app.get("/status", summary="Service status, sessions, shards and engine health")
    async def status():
        def build() -> dict[str, Any]:
            body = monitor().status({"active": sessions_active()}, processors())
            body["engines"] = current().require().engine_health()
            return body
        return await run_in_threadpool(build)

    @app.get("/metrics", summary="Cluster-wide request, session, resource and database metrics")
    async def metrics():
        return await run_in_threadpool(lambda: monitor().metrics(sessions_active(), processors()))

    @app.get("/stats", summary="Time series of the last minutes")
    async def stats(minutes: int = Query(10, ge=1, le=1440)):
        return await run_in_threadpool(
            lambda: monitor().stats(minutes, processors(), active_sessions=sessions_active()))

    @app.get("/metrics/{name}", summary="One metric's statistics and data points")
    async def metric(name: str, minutes: int = Query(10, ge=1, le=1440)):
        found = await run_in_threadpool(monitor().metric, name, minutes)
        if found is None:
            return JSONResponse({"detail": no_data_detail(name, minutes)}, status_code=404)
        return found

    @app.get("/concurrency", summary="Diagnostics: request concurrency")
    async def concurrency():
        return {"status": "ok", "session_serialisation": "redis lock per session", "cluster_wide": True}

    @app.get("/cache/stats", summary="Diagnostics: caches")
    async def cache_stats():
        return {"status": "ok", "caches": {}}

    @app.post("/cache/invalidate", summary="Diagnostics: invalidate caches (none are kept)")
    async def cache_invalidate():
        return {"status": "ok", "invalidated": 0}

    @app.get("/distributed-stm/stats", summary="Diagnostics: STM storage")
    async def distributed_stm():
        return await run_in_threadpool(lambda: {"status": "ok", "backend": "redis",
                                                "active_sessions": sessions_active()})

    @app.get("/connection-pools", summary="Diagnostics: connections")
    async def connection_pools():
        return {"status": "ok", "redis": "connection pool per replica", "clickhouse": "per shard"}

    @app.websocket("/ws/events")
    async def events(websocket: WebSocket):
        """Snapshot first, then every cluster event (subscribed before the snapshot: nothing is missed);
        text ``ping`` is answered with ``pong``."""
        keys = current().api_keys
        if keys:
            try:
                nodes_for_token(keys, websocket.headers.get("authorization"))
            except ApiError:
                await websocket.close(code=1008)
                return
        await websocket.accept()
        bus = current().events
        subscription = await bus.open_subscription()
        try:
            await websocket.send_json(bus.snapshot(await run_in_threadpool(sessions_active)))
            forward = asyncio.create_task(_forward_events(websocket, subscription))
            try:
                while True:
                    if await websocket.receive_text() == "ping":
                        await websocket.send_text("pong")
            except WebSocketDisconnect:
                pass
            finally:
                forward.cancel()
        finally:
            await subscription.close()


async def _forward_events(websocket: WebSocket, subscription: Any) -> None:
    async for event in subscription:
        await websocket.send_json(event)
