"""The error answers the routes document in OpenAPI, keyed by status (``responses=`` of a route or router).

The routes answer with the service's dicts as Responses (``call``): ``response_model`` documents a success
body and is never applied to it; these document the error bodies ``serve_app.api.errors`` renders.
"""

# No ``from __future__ import annotations``: the models below are used as values in the route decorators.

from typing import Any

from schema.responses import ErrorResponse, SessionNotFoundResponse, UnprocessableResponse

Responses = dict[int | str, dict[str, Any]]

UNAVAILABLE: Responses = {503: {"model": ErrorResponse,
                                "description": "The service is starting or a dependency is down (Retry-After)."}}
NOT_FOUND: Responses = {404: {"model": SessionNotFoundResponse, "description": "Unknown or expired session."}}
UNPROCESSABLE: Responses = {422: {"model": UnprocessableResponse,
                                  "description": "Invalid request, or beyond the limits."}}
BAD_REQUEST: Responses = {400: {"model": ErrorResponse,
                                "description": "The request cannot be carried out as it stands."}}
FORBIDDEN: Responses = {403: {"model": ErrorResponse,
                              "description": "The API key may not use this node (or raw KB access)."}}
