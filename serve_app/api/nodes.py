"""Node-level endpoints (spec §4.3) and the operators' bulk endpoints."""

# No ``from __future__ import annotations`` here: Serve pickles the app, and FastAPI analyses the routes of an
# included router again in the replica, where a string annotation names nothing (a body becomes a query).

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from schema.api import BulkLearnRequest, KbImportRequest
from schema.responses import (
    AffinitiesResponse,
    BulkLearnResult,
    DeprecatedCognitionResponse,
    DeprecatedPerceptResponse,
    ExportedPattern,
    KbImportResult,
    PatternResponse,
    SymbolAffinityResponse,
    SymbolStatsResponse,
)
from serve_app.api.documented import FORBIDDEN, UNAVAILABLE, UNPROCESSABLE
from serve_app.api.holder import Current, call
from serve_app.service import resolve_node


class NDJSONResponse(StreamingResponse):
    """Documents ``/bulk/export``'s media type (the route builds its own ``StreamingResponse``)."""

    media_type = "application/x-ndjson"


EXPORT_LINES = {"description": "JSON lines, one `ExportedPattern` object per line.",
                "content": {NDJSONResponse.media_type: {"itemSchema": ExportedPattern.model_json_schema()}}}
"""The schema of each line, as OpenAPI 3.2 (and FastAPI for its own JSON Lines) writes a sequential media type."""


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
                 response_model=BulkLearnResult, responses=UNPROCESSABLE)
    async def bulk_learn(body: BulkLearnRequest):
        return await call(current().require().bulk_learn, body)

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
