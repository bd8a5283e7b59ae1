"""The KATO HTTP API as a FastAPI app around ``KatoService`` (spec §4), one router per resource.

The app is built once per process; ``ServiceHolder.service`` is set by whoever hosts it (the Ray Serve
ingress replica, or a plain uvicorn server in single-process mode and tests).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serve_app.api.admin import admin_router
from serve_app.api.errors import install_error_handlers
from serve_app.api.events_ws import events_router
from serve_app.api.holder import ServiceHolder, process_holder
from serve_app.api.middleware import KatoConventions
from serve_app.api.nodes import BODY_MODELS, bulk_router, nodes_router
from serve_app.api.service_routes import service_router
from serve_app.api.sessions import sessions_router


def build_app(holder: ServiceHolder | None = None) -> FastAPI:
    """The app; with no ``holder`` its routes serve ``process_holder()`` (how Serve replicas use it)."""
    current = (lambda: holder) if holder is not None else process_holder
    app = FastAPI(title="kato-cluster", version="0.1.0",
                  description="KATO-compatible pattern memory and prediction service, sharded on Ray.")
    app.add_middleware(KatoConventions, current=current)
    install_error_handlers(app, current)
    for router in (sessions_router(current), bulk_router(current), nodes_router(current), service_router(current),
                   events_router(current), admin_router(current)):
        app.include_router(router)
    _document_models(app, BODY_MODELS)
    return app


def _document_models(app: FastAPI, models: tuple[type[BaseModel], ...]) -> None:
    """Add request models that routes read themselves (not as a body parameter) to the schema's components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _, defs = models_json_schema([(m, "validation") for m in models],
                                         ref_template="#/components/schemas/{model}")
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
