"""Errors the HTTP layer renders with KATO's status codes and bodies (spec §4.1)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status_code = 400

    def __init__(self, detail: Any, headers: dict[str, str] | None = None):
        super().__init__(str(detail))
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


class BadRequest(ApiError):
    status_code = 400


class Unprocessable(ApiError):
    status_code = 422


class SessionNotFound(ApiError):
    """Unknown or expired session: KATO's middleware body plus ``detail`` (spec §4.1)."""

    status_code = 404

    def __init__(self, session_id: str, with_error: bool = True):
        super().__init__(f"Session {session_id} not found or expired")
        self.session_id = session_id
        self.with_error = with_error

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail}
        if self.with_error:
            body["error"] = {"code": "SESSION_NOT_FOUND", "message": self.detail, "session_id": self.session_id}
        return body


class ServiceUnavailable(ApiError):
    """A dependency (shard, Redis, ClickHouse) is down or restarting: retry later."""

    status_code = 503

    def __init__(self, detail: str, retry_after: int = 1):
        super().__init__(detail, {"Retry-After": str(retry_after)})


class PayloadTooLarge(ApiError):
    status_code = 413
