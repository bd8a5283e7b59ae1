"""The one table from the project's error family to HTTP (spec §4.1), and the handlers that apply it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from schema.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    KatoError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    SessionNotFound,
    Unauthorized,
    Unprocessable,
)
from serve_app.api.holder import Current, call
from serve_app.api.paths import session_of
from serve_app.api.rendering import finite

HTTP_STATUS: dict[type[KatoError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    ServiceUnavailable: 503,
}
"""Status of each branch of the family; a class not below any of these (a bug of ours) is a 500."""


def status_of(error: KatoError) -> int:
    return next((HTTP_STATUS[cls] for cls in type(error).__mro__ if cls in HTTP_STATUS), 500)


def headers_of(error: KatoError) -> dict[str, str]:
    if isinstance(error, ServiceUnavailable):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    return {}


def error_response(error: KatoError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=status_of(error), headers=headers_of(error))


def install_error_handlers(app: FastAPI, current: Current) -> None:
    @app.exception_handler(KatoError)
    async def kato_error(_request: Request, error: KatoError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 body, with non-finite numbers in the echoed input written as strings (JSON has none).
        A request on an unknown session is a 404 whatever its body, as in KATO, where the session is
        resolved before the body is validated."""
        session_id = session_of(request.url.path)
        if session_id is not None and current().service is not None:
            sessions = current().require().sessions
            try:
                if not await call(lambda: sessions.exists(session_id)["exists"]):
                    return error_response(SessionNotFound(session_id))
            except KatoError as unavailable:
                return error_response(unavailable)
        body: Any = jsonable_encoder(finite(error.errors()))
        return JSONResponse({"detail": body}, status_code=422)
