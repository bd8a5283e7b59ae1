"""Request conventions as plain ASGI middleware: trace and session headers, API keys, the body limit and
request metrics (Starlette's ``BaseHTTPMiddleware`` runs every request in an extra task and stream)."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.api import ARROW_STREAM, NDJSON
from schema.errors import KatoError, PayloadTooLarge
from serve_app.access import OPEN_PATHS, nodes_for_token, restrict_to
from serve_app.api.errors import error_response
from serve_app.api.holder import Current
from serve_app.api.paths import session_of


async def limited_body(scope: Scope, receive: Receive, limit: int) -> tuple[bool, Receive]:
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


def streamed(path: str, content_type: str) -> bool:
    """A streamed bulk load: read as it arrives, in bounded memory, so the body limit does not apply to it."""
    kind = content_type.split(";")[0].strip().lower()
    return path == "/bulk/learn" and kind in (NDJSON, ARROW_STREAM)


def _extra_headers(request: Request) -> list[tuple[bytes, bytes]]:
    trace_id = request.headers.get("x-trace-id") or uuid.uuid4().hex
    extra = [(b"x-trace-id", trace_id.encode("latin-1"))]
    session_id = session_of(request.url.path)
    if session_id is not None:  # percent-encoded: a path may hold any bytes
        extra.append((b"x-session-id", quote(session_id, safe="-_.~!$&'()*+,;=:@").encode("latin-1")))
    return extra


class KatoConventions:
    def __init__(self, app: ASGIApp, current: Current) -> None:
        self.app = app
        self.current = current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request = Request(scope)
        path = request.url.path
        extra = _extra_headers(request)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        holder = self.current()
        response: Response | None = None
        try:
            if holder.api_keys and path not in OPEN_PATHS:
                restrict_to(nodes_for_token(holder.api_keys, request.headers.get("authorization")))
            if not streamed(path, request.headers.get("content-type", "")):
                too_large, receive = await limited_body(scope, receive, holder.max_body_bytes)
                if too_large:
                    raise PayloadTooLarge(holder.max_body_bytes)
        except KatoError as error:
            response = error_response(error)
        try:
            await (response or self.app)(scope, receive, send_with_headers)
        finally:
            if holder.monitor is not None:
                holder.monitor.record_request_soon(path, status, time.perf_counter() - start)
