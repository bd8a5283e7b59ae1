"""The project's one error family. Every error we raise on purpose is a ``KatoError``; the HTTP layer maps the
classes to status codes in one table (``serve_app.api.errors``), and the adapters where a dependency crosses
in turn its failures into this family (Ray: ``actors.ray_shard``; Redis: ``cluster.stores.redis_client``;
ClickHouse: ``cluster.stores.clickhouse``), so nothing above them knows those libraries' exceptions.

::

    KatoError
    ├── BadRequest                      400  the request cannot be carried out as it stands
    │   ├── EmptySTMError                    learn on an empty STM (KATO's "Cannot learn from empty STM")
    │   ├── VectorLengthError                the vectors of one observation do not broadcast together
    │   └── ConfigValidationError            a session-config update with invalid values (KATO's body)
    ├── Unauthorized                    401  no or unknown API key
    ├── Forbidden                       403  the API key may not use this node, or raw KB access
    ├── NotFound                        404
    │   └── SessionNotFound                  unknown or expired session (KATO's middleware body)
    ├── Conflict                        409  the request races another one that got there first
    ├── PayloadTooLarge                 413  the request body is over the configured limit
    ├── Unprocessable                   422  a value outside the service's limits
    ├── ServiceUnavailable              503  retry later (Retry-After)
    │   ├── ServiceStarting                  the host has no service yet
    │   ├── ShardUnavailable                 a shard actor is restarting
    │   ├── StaleShardMap                    the shard map changed under a request (it is retried with the new one)
    │   ├── StoreUnavailable                 the ClickHouse server is unreachable
    │   ├── RedisUnavailable                 Redis is unreachable or loading
    │   ├── SessionLockTimeout               the session is locked by another request
    │   └── SessionLockLost                  the session lock's lease ran out while held
    ├── StoreError                      500  the store was used wrongly (a bug, never the client's input)
    ├── SettingsError                        a setting that cannot be read (start-up, not a request)
    └── LauncherError                        a start or stop that cannot proceed (the operator's command line)

Errors a client can cause are all 4xx; 503s say when to come back; a 500 is a bug.
"""

from __future__ import annotations

from typing import Any


class KatoError(Exception):
    """Base of every error the project raises on purpose. ``detail`` is what a client is told (JSON-ready)."""

    def __init__(self, detail: Any = None) -> None:
        detail = self.__class__.__doc__.strip().splitlines()[0] if detail is None and self.__class__.__doc__ \
            else detail
        super().__init__(str(detail))
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail}


class BadRequest(KatoError):
    """The request cannot be carried out as it stands."""


class EmptySTMError(BadRequest, ValueError):
    """Cannot learn from empty STM"""


class VectorLengthError(BadRequest, ValueError):
    """The vectors of one observation do not broadcast together."""


class ConfigValidationError(BadRequest, ValueError):
    """A configuration update with invalid values; rendered as KATO's 400 body."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__({"error": "Configuration validation failed", "validation_errors": errors})
        self.errors = errors

    def __str__(self) -> str:
        return "Configuration validation failed"


class Unauthorized(KatoError):
    """Missing or unknown API key."""


class Forbidden(KatoError):
    """This API key may not do that."""


class NotFound(KatoError):
    """Not found."""


class SessionNotFound(NotFound):
    """Unknown or expired session: KATO's middleware body plus ``detail`` (spec §4.1)."""

    def __init__(self, session_id: str, with_error: bool = True) -> None:
        super().__init__(f"Session {session_id} not found or expired")
        self.session_id = session_id
        self.with_error = with_error

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail}
        if self.with_error:
            body["error"] = {"code": "SESSION_NOT_FOUND", "message": self.detail, "session_id": self.session_id}
        return body


class Conflict(KatoError):
    """The request races another one that got there first."""


class PayloadTooLarge(KatoError):
    """The request body is over the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


class Unprocessable(KatoError):
    """A value outside the service's limits."""


class ServiceUnavailable(KatoError):
    """A dependency is down or restarting: retry after ``retry_after`` seconds."""

    retry_after = 1

    def __init__(self, detail: Any = None, retry_after: int | None = None) -> None:
        super().__init__(detail)
        if retry_after is not None:
            self.retry_after = retry_after


class ServiceStarting(ServiceUnavailable):
    """service is starting"""


class ShardUnavailable(ServiceUnavailable):
    """a shard is restarting; retry shortly"""


class StaleShardMap(ServiceUnavailable):
    """the shard map changed; retry shortly"""


class StoreUnavailable(ServiceUnavailable):
    """The ClickHouse server cannot be reached; carries a one-line reason."""

    retry_after = 5


class RedisUnavailable(ServiceUnavailable):
    """Redis is unavailable; retry shortly"""


class SessionLockTimeout(ServiceUnavailable, TimeoutError):
    """The per-session lock could not be acquired before the deadline."""


class SessionLockLost(ServiceUnavailable):
    """The session lock's lease expired while held (another holder may have run concurrently)."""


class StoreError(KatoError):
    """The store was used wrongly (a bug, never the client's input)."""


class SettingsError(KatoError, ValueError):
    """A setting (environment variable, option or Serve ``args`` value) that cannot be read as its type."""


class LauncherError(KatoError):
    """A start or stop that cannot proceed, with a message for the operator."""
