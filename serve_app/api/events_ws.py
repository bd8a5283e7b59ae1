"""``WS /ws/events``: the cluster's session events (spec §4.3)."""

# No ``from __future__ import annotations`` here: Serve pickles the app, and FastAPI analyses the routes of an
# included router again in the replica, where a string annotation names nothing (a body becomes a query).

import asyncio
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from schema.errors import KatoError
from serve_app.access import nodes_for_token
from serve_app.api.holder import Current


def events_router(current: Current) -> APIRouter:
    router = APIRouter(tags=["events"])

    @router.websocket("/ws/events")
    async def events(websocket: WebSocket):
        """Snapshot first, then every cluster event (subscribed before the snapshot: nothing is missed);
        text ``ping`` is answered with ``pong``."""
        keys = current().api_keys
        if keys:
            try:
                nodes_for_token(keys, websocket.headers.get("authorization"))
            except KatoError:
                await websocket.close(code=1008)
                return
        await websocket.accept()
        bus = current().events
        subscription = await bus.open_subscription()
        try:
            active = await run_in_threadpool(lambda: current().require().sessions.count())
            await websocket.send_json(bus.snapshot(active))
            forward = asyncio.create_task(_forward_events(websocket, subscription))
            try:
                while True:
                    if await websocket.receive_text() == "ping":
                        await websocket.send_text("pong")
            except WebSocketDisconnect:
                pass
            finally:
                forward.cancel()
        finally:
            await subscription.close()

    return router


async def _forward_events(websocket: WebSocket, subscription: Any) -> None:
    async for event in subscription:
        await websocket.send_json(event)
