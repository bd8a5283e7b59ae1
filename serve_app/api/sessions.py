"""The session endpoints of the KATO API (spec §4.2)."""

# No ``from __future__ import annotations`` here: Serve pickles the app, and FastAPI analyses the routes of an
# included router again in the replica, where a string annotation names nothing (a body becomes a query).

from typing import Any

from fastapi import APIRouter, Body, Query

from schema.api import CreateSessionRequest, ObservationData, ObservationSequenceRequest
from schema.responses import (
    AllCleared,
    CognitionDataResponse,
    ConfigResponse,
    ConfigValidationErrorResponse,
    ErrorResponse,
    FinalizeTrainingResult,
    LearnResult,
    ObservationResult,
    ObservationSequenceResult,
    PerceptDataResponse,
    PredictionsResponse,
    SessionCount,
    SessionDeleted,
    SessionExists,
    SessionExtended,
    SessionResponse,
    StatusMessage,
    StmCleared,
    StmResponse,
)
from serve_app.api.documented import BAD_REQUEST, NOT_FOUND, UNAVAILABLE, UNPROCESSABLE
from serve_app.api.holder import Current, call


def sessions_router(current: Current) -> APIRouter:
    router = APIRouter(prefix="/sessions", tags=["sessions"], responses=UNAVAILABLE)

    @router.post("", summary="Create a session for a node", response_model=SessionResponse,
                 responses=UNPROCESSABLE)
    async def create_session(body: CreateSessionRequest):
        return await call(current().require().create_session, body)

    @router.get("/count", summary="Number of live sessions", response_model=SessionCount)
    async def count_sessions():
        return await call(current().require().count_sessions)

    @router.get("/{session_id}/exists", summary="Whether a session exists (never extends it)",
                response_model=SessionExists)
    async def session_exists(session_id: str):
        return await call(current().require().session_exists, session_id)

    @router.get("/{session_id}", summary="Session details, with the remaining TTL", response_model=SessionResponse,
                responses=NOT_FOUND)
    async def get_session(session_id: str):
        return await call(current().require().get_session, session_id)

    @router.delete("/{session_id}", summary="Delete a session (its node's patterns stay)",
                   response_model=SessionDeleted, responses=NOT_FOUND)
    async def delete_session(session_id: str):
        return await call(current().require().delete_session, session_id)

    _config_routes(router, current)
    _observation_routes(router, current)
    _memory_routes(router, current)
    return router


def _config_routes(router: APIRouter, current: Current) -> None:
    @router.get("/{session_id}/config", summary="Effective session configuration", response_model=ConfigResponse,
                responses=NOT_FOUND)
    async def get_config(session_id: str):
        return await call(current().require().get_config, session_id)

    @router.post("/{session_id}/config", summary="Update the session configuration", response_model=StatusMessage,
                 responses={**NOT_FOUND, 400: {"model": ConfigValidationErrorResponse,
                                               "description": "Invalid configuration values."}})
    async def update_config(session_id: str, body: dict[str, Any] = Body(...)):
        return await call(current().require().update_config, session_id, body)

    @router.post("/{session_id}/extend", summary="Set the session's expiry to now + ttl_seconds",
                 response_model=SessionExtended, responses={**NOT_FOUND, **UNPROCESSABLE})
    async def extend_session(session_id: str, ttl_seconds: int = Query(3600)):
        return await call(current().require().extend_session, session_id, ttl_seconds)


def _observation_routes(router: APIRouter, current: Current) -> None:
    @router.post("/{session_id}/observe", summary="Observe one event", response_model=ObservationResult,
                 responses={**NOT_FOUND, **BAD_REQUEST, **UNPROCESSABLE})
    async def observe(session_id: str, body: ObservationData):
        return await call(current().require().observe, session_id, body)

    @router.post("/{session_id}/observe-sequence", summary="Observe a sequence of events",
                 response_model=ObservationSequenceResult, responses={**NOT_FOUND, **BAD_REQUEST, **UNPROCESSABLE})
    async def observe_sequence(session_id: str, body: ObservationSequenceRequest):
        return await call(current().require().observe_sequence, session_id, body)

    @router.get("/{session_id}/stm", summary="Short-term memory", response_model=StmResponse, responses=NOT_FOUND)
    async def stm(session_id: str):
        return await call(current().require().stm, session_id)

    @router.get("/{session_id}/predictions", summary="Predictions for the current STM",
                response_model=PredictionsResponse, responses=NOT_FOUND)
    async def predictions(session_id: str):
        return await call(current().require().predictions, session_id)

    @router.get("/{session_id}/percept-data", summary="Last percept of the session",
                response_model=PerceptDataResponse, responses=NOT_FOUND)
    async def percept_data(session_id: str):
        return await call(current().require().percept_data, session_id)

    @router.get("/{session_id}/cognition-data", summary="Cognition snapshot of the session",
                response_model=CognitionDataResponse, responses=NOT_FOUND)
    async def cognition_data(session_id: str):
        return await call(current().require().cognition_data, session_id)


def _memory_routes(router: APIRouter, current: Current) -> None:
    @router.post("/{session_id}/learn", summary="Learn the STM as a pattern", response_model=LearnResult,
                 responses={**NOT_FOUND, 400: {"model": ErrorResponse, "description": "The STM is empty."}})
    async def learn(session_id: str):
        return await call(current().require().learn, session_id)

    @router.post("/{session_id}/finalize-training", summary="Precompute whole-pattern entropies",
                 response_model=FinalizeTrainingResult, responses=NOT_FOUND)
    async def finalize_training(session_id: str):
        return await call(current().require().finalize_training, session_id)

    @router.post("/{session_id}/clear-stm", summary="Clear STM and accumulators", response_model=StmCleared,
                 responses=NOT_FOUND)
    async def clear_stm(session_id: str):
        return await call(current().require().clear_stm, session_id)

    @router.post("/{session_id}/clear-all", summary="Wipe the node's long-term memory and this STM",
                 response_model=AllCleared, responses=NOT_FOUND)
    async def clear_all(session_id: str):
        return await call(current().require().clear_all, session_id)
