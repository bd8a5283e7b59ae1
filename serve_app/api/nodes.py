"""Node-level endpoints (spec §4.3) and the operators' bulk endpoints."""

# No ``from __future__ import annotations`` here: Serve pickles the app, and FastAPI analyses the routes of an
# included router again in the replica, where a string annotation names nothing (a body becomes a query).

import asyncio
import io
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from schema.api import ARROW_STREAM, NDJSON, BulkLearnRequest, BulkPattern, KbImportRequest
from schema.errors import Unprocessable
from schema.responses import (
    AffinitiesResponse,
    BulkLearnAnswer,
    DeprecatedCognitionResponse,
    DeprecatedPerceptResponse,
    ExportedPattern,
    KbImportResult,
    LoadProgress,
    PatternResponse,
    SymbolAffinityResponse,
    SymbolStatsResponse,
)
from serve_app.api.body_pipe import BodyPipe
from serve_app.api.documented import FORBIDDEN, UNAVAILABLE, UNPROCESSABLE
from serve_app.api.holder import Current, call
from serve_app.api.rendering import as_response
from serve_app.service import resolve_node


class NDJSONResponse(StreamingResponse):
    """Documents ``/bulk/export``'s media type (the route builds its own ``StreamingResponse``)."""

    media_type = "application/x-ndjson"


EXPORT_LINES = {"description": "JSON lines, one `ExportedPattern` object per line.",
                "content": {NDJSONResponse.media_type: {"itemSchema": ExportedPattern.model_json_schema()}}}
"""The schema of each line, as OpenAPI 3.2 (and FastAPI for its own JSON Lines) writes a sequential media type."""


STREAMED_BODIES = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/BulkLearnRequest"}},
    NDJSON: {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/BulkPattern"}},
             "description": "One pattern per line, read as it arrives; needs `node_id` in the query."},
    ARROW_STREAM: {"schema": {"type": "string", "format": "binary"},
                   "description": "Arrow IPC stream with an `events` column (list of lists of strings) and "
                                  "optional `emotives`, `metadata` (JSON text or native) and `frequency`."}}}}
"""``/bulk/learn`` takes a JSON document, or a streamed body (``serve_app.bulk``); the models it refers to are
added to the schema's components by ``serve_app.api.app``."""
BODY_MODELS = (BulkLearnRequest, BulkPattern)


async def _learn_stream(service: Any, request: Request, content_type: str, node_id: str | None,
                        options: dict[str, Any]) -> Any:
    if not node_id:
        raise Unprocessable("a streamed bulk load needs the node_id query parameter")
    pipe = BodyPipe()
    reader = io.BufferedReader(pipe, 1 << 20)

    def learn() -> Any:
        try:
            return as_response(service.bulk_learn_stream(node_id, reader, content_type, **options))
        finally:
            pipe.abandon()

    worker = asyncio.ensure_future(run_in_threadpool(learn))
    await pipe.feed(request.stream())
    return await worker


def node_of(request: Request, node_id: str | None) -> str:
    return resolve_node(node_id, request.headers.get("x-test-id"), request.headers.get("x-node-id"))


def nodes_router(current: Current) -> APIRouter:
    router = APIRouter(tags=["nodes"], responses=UNAVAILABLE)

    @router.get("/pattern/{pattern_id}", summary="A stored pattern of the node",
                response_model=PatternResponse)
    async def pattern(pattern_id: str, request: Request, node_id: str | None = None):
        return await call(current().require().pattern, node_of(request, node_id), pattern_id)

    @router.get("/symbols/affinity", summary="Affinity of every symbol of the node",
                response_model=AffinitiesResponse)
    async def affinities(request: Request, node_id: str | None = None):
        return await call(current().require().affinities, node_of(request, node_id))

    @router.get("/symbols/stats", summary="Frequency statistics of every symbol of the node",
                response_model=SymbolStatsResponse)
    async def symbol_stats(request: Request, node_id: str | None = None):
        return await call(current().require().symbol_stats, node_of(request, node_id))

    @router.get("/symbols/{symbol}/affinity", summary="Affinity of one symbol",
                response_model=SymbolAffinityResponse)
    async def symbol_affinity(symbol: str, request: Request, node_id: str | None = None):
        return await call(current().require().symbol_affinity, node_of(request, node_id), symbol)

    @router.get("/percept-data", summary="Deprecated: use the session endpoint",
                response_model=DeprecatedPerceptResponse)
    async def deprecated_percept(request: Request, node_id: str | None = None):
        return await call(current().require().deprecated_percept, node_of(request, node_id))

    @router.get("/cognition-data", summary="Deprecated: use the session endpoint",
                response_model=DeprecatedCognitionResponse)
    async def deprecated_cognition(request: Request, node_id: str | None = None):
        return await call(current().require().deprecated_cognition, node_of(request, node_id))

    return router


def bulk_router(current: Current) -> APIRouter:
    router = APIRouter(prefix="/bulk", tags=["bulk"], responses=UNAVAILABLE)

    @router.post("/learn", summary="Learn many patterns of a node at once",
                 description="Bulk ingest through the batch path: the end state (pattern rows, frequencies, "
                             "emotives, metadata, symbol statistics, affinity) equals learning the patterns one "
                             "by one in order, each `frequency` times. Patterns with fewer than two symbols are "
                             "skipped (their name is empty), as a learn would skip them.",
                 response_model=BulkLearnAnswer, responses=UNPROCESSABLE,
                 openapi_extra=STREAMED_BODIES)
    async def bulk_learn(request: Request, node_id: str | None = None, persistence: int = 5,
                         load_id: str | None = None, offset: int = 0, batch: int = 5000):
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type in (NDJSON, ARROW_STREAM):
            return await _learn_stream(current().require(), request, content_type, node_id,
                                       {"persistence": persistence, "load_id": load_id, "offset": offset,
                                        "batch": batch})
        try:
            body = BulkLearnRequest.model_validate_json(await request.body())
        except ValidationError as error:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]) from error
        return await call(current().require().bulk_learn, body)

    @router.get("/loads/{load_id}", summary="How many rows of a streamed load are committed",
                description="A client resuming a load sends the rest of its file with `offset` = `rows_done`.",
                response_model=LoadProgress)
    async def bulk_load_progress(load_id: str, request: Request, node_id: str | None = None):
        return await call(current().require().bulk_load_progress, node_of(request, node_id), load_id)

    @router.get("/export", summary="Every pattern of a node as JSON lines",
                description="One JSON object per line: name, events, emotives (stored list), metadata, frequency. "
                            "Loading the lines with /bulk/learn into an empty node recreates the patterns.",
                response_class=NDJSONResponse, responses={200: EXPORT_LINES, **FORBIDDEN})
    async def bulk_export(request: Request, node_id: str | None = None, kb_id: str | None = None):
        service = current().require()
        rows = await run_in_threadpool(lambda: [json.dumps(row) + "\n" for row in
                                                service.export_kb(node_of(request, node_id), kb_id)])
        return StreamingResponse(iter(rows), media_type="application/x-ndjson")

    @router.post("/import-kato", summary="Import a KATO knowledge base verbatim (used by import-kato)",
                 description="Pattern rows are stored without applying statistics; the given `{kb_id}:*` Redis "
                             "keys are written as they are, so a KATO deployment's statistics carry over exactly.",
                 response_model=KbImportResult, responses={**FORBIDDEN, **UNPROCESSABLE})
    async def bulk_import(body: KbImportRequest):
        return await call(current().require().import_kb, body)

    return router
