"""What an HTTP host serves: the ``KatoService`` and its observability, looked up per request.

Routes look the holder up at call time: Ray Serve pickles the app into each replica, and a holder captured in a
closure would be a copy that the replica's constructor never fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool

from schema.errors import ServiceStarting
from serve_app.api.rendering import as_response
from serve_app.service import KatoService


@dataclass
class ServiceHolder:
    service: KatoService | None = None
    monitor: Any = None  # serve_app.monitoring.Monitor
    events: Any = None  # serve_app.events.EventBus
    api_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024 * 1024

    def require(self) -> KatoService:
        if self.service is None:
            raise ServiceStarting()
        return self.service


Current = Callable[[], ServiceHolder]

_PROCESS_HOLDER: ServiceHolder | None = None


def process_holder() -> ServiceHolder:
    """This process's holder (what a Serve replica fills in its constructor)."""
    global _PROCESS_HOLDER
    if _PROCESS_HOLDER is None:
        _PROCESS_HOLDER = ServiceHolder()
    return _PROCESS_HOLDER


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking service code in a worker thread; JSON bodies are rendered there too (``PlainJSONResponse``:
    the results are JSON-ready, FastAPI's generic encoder would walk them again)."""
    return await run_in_threadpool(lambda: as_response(fn(*args)))
