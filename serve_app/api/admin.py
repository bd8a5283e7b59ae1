"""Operator endpoints: resharding while the service serves (behind an all-nodes API key when keys are set)."""

# No ``from __future__ import annotations`` here: Serve analyses the routes of an included router again in the
# replica, where a string annotation names nothing.

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from schema.api import ReshardRequest
from schema.responses import ErrorResponse, ReshardAborted, ReshardStarted, ReshardStatus
from serve_app.api.documented import FORBIDDEN, UNAVAILABLE, UNPROCESSABLE, Responses
from serve_app.api.holder import Current, call
from serve_app.api.rendering import PlainJSONResponse

CONFLICT: Responses = {409: {"model": ErrorResponse,
                             "description": "Another reshard is in progress, or there is none to abort."}}


def admin_router(current: Current) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], responses={**UNAVAILABLE, **FORBIDDEN})

    @router.post("/reshard", summary="Reshard to a number of shards while serving",
                 description="Starts the move in the background and answers at once; `GET /admin/reshard` follows "
                             "it. Asking again for the count of an interrupted reshard resumes it.",
                 response_model=ReshardStarted, status_code=202, responses={**UNPROCESSABLE, **CONFLICT})
    async def reshard(body: ReshardRequest):
        started = await run_in_threadpool(current().require().start_reshard, body.shards)
        return PlainJSONResponse(started, status_code=202)

    @router.get("/reshard", summary="The shard map and the progress of the last reshard",
                response_model=ReshardStatus)
    async def reshard_status():
        return await call(current().require().reshard_status)

    @router.post("/reshard/abort", summary="Roll back an interrupted reshard",
                 description="The old owners keep their ranges; the shards that were receiving drop what they got.",
                 response_model=ReshardAborted, responses=CONFLICT)
    async def reshard_abort():
        return await call(current().require().abort_reshard)

    return router
