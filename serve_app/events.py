"""WebSocket event fan-out across replicas through Redis pub/sub (spec §4.3 ``WS /ws/events``).

Any replica publishes an event (``session.created``, ``session.destroyed``, ...) on the Redis channel
``kato:events``; every replica's ``/ws/events`` handlers subscribe to it and forward each event to their
clients, so a client sees the events of the whole cluster whichever replica it is connected to.

Frames are ``{"event_type", "timestamp": ISO-8601 UTC, "data": {...}}``. ``EventBus.publish`` is synchronous
(it matches ``serve_app.service.EventSink``); subscriptions use ``redis.asyncio``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

import redis
import redis.asyncio as aioredis

from cluster.stores.key_space import is_cluster_url, node_url

CHANNEL = "kato:events"
SESSION_CREATED = "session.created"
SESSION_DESTROYED = "session.destroyed"
STATE_SNAPSHOT = "state.snapshot"


def iso_now() -> str:
    """Current UTC time, ISO-8601."""
    return datetime.now(timezone.utc).isoformat()


def make_event(event_type: str, data: dict[str, Any], timestamp: str | None = None) -> dict[str, Any]:
    """One event frame."""
    return {"event_type": event_type, "timestamp": timestamp or iso_now(), "data": dict(data)}


def session_created_data(session_id: str, node_id: str, created_at: str) -> dict[str, Any]:
    """``session.created`` data fields."""
    return {"session_id": session_id, "node_id": node_id, "created_at": created_at}


def session_destroyed_data(session_id: str, reason: str = "explicit_delete",
                           destroyed_at: str | None = None) -> dict[str, Any]:
    """``session.destroyed`` data fields."""
    return {"session_id": session_id, "destroyed_at": destroyed_at or iso_now(), "reason": reason}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)


class Subscription:
    """A live subscription to the event channel (subscribed once ``EventBus.open_subscription`` returns)."""

    def __init__(self, client: aioredis.Redis, pubsub: aioredis.client.PubSub) -> None:
        self._client = client
        self._pubsub = pubsub
        self._closed = False

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None if none arrives within ``timeout`` seconds (None: wait forever)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            if message is not None and message.get("type") == "message":
                try:
                    event = json.loads(_text(message["data"]))
                except ValueError:
                    continue  # not one of ours: skip garbage rather than kill every subscriber
                if isinstance(event, dict):
                    return event
                continue
            if deadline is not None and loop.time() >= deadline:
                return None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while not self._closed:
            event = await self.get()
            if event is not None:
                yield event

    async def close(self) -> None:
        """Unsubscribe and release the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._pubsub.unsubscribe()
        finally:
            await self._pubsub.aclose()
            await self._client.aclose()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class EventBus:
    """Publishes events on ``kato:events`` and subscribes to them, shared by every replica through Redis.

    ``client_factory`` returns the (synchronous) client used to publish, created once on first use.
    Subscriptions connect with ``redis.asyncio`` to ``url`` (or ``async_client_factory``); without either,
    the connection settings of the publishing client are reused.
    """

    def __init__(self, client_factory: Callable[[], redis.Redis], *, url: str | None = None,
                 async_client_factory: Callable[[], aioredis.Redis] | None = None,
                 channel: str = CHANNEL) -> None:
        self._client_factory = client_factory
        self._client: redis.Redis | None = None
        self._url = url
        self._async_client_factory = async_client_factory
        self.channel = channel

    @classmethod
    def from_url(cls, url: str, channel: str = CHANNEL) -> EventBus:
        """A bus whose publisher and subscribers connect to ``url``; on a Redis Cluster, to the node the URL names
        (a cluster delivers a message published on any node to the subscribers of every node)."""
        plain = node_url(url) if is_cluster_url(url) else url
        return cls(lambda: redis.Redis.from_url(plain), url=plain, channel=channel)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    # ------------------------------------------------------------------ publishing
    def publish(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Publish one event to every subscriber in the cluster; returns the frame sent."""
        event = make_event(event_type, data)
        self.client.publish(self.channel, json.dumps(event))
        return event

    def session_created(self, session_id: str, node_id: str, created_at: str) -> dict[str, Any]:
        """Publish ``session.created``."""
        return self.publish(SESSION_CREATED, session_created_data(session_id, node_id, created_at))

    def session_destroyed(self, session_id: str, reason: str = "explicit_delete") -> dict[str, Any]:
        """Publish ``session.destroyed``."""
        return self.publish(SESSION_DESTROYED, session_destroyed_data(session_id, reason))

    @staticmethod
    def snapshot(active_sessions: int) -> dict[str, Any]:
        """The ``state.snapshot`` frame a ``/ws/events`` client receives on connect (not published)."""
        return make_event(STATE_SNAPSHOT, {"active_sessions": int(active_sessions), "system_status": "healthy"})

    # ------------------------------------------------------------------ subscribing
    def _async_client(self) -> aioredis.Redis:
        if self._async_client_factory is not None:
            return self._async_client_factory()
        if self._url is not None:
            return aioredis.Redis.from_url(self._url)
        kwargs = dict(self.client.connection_pool.connection_kwargs)
        allowed = ("host", "port", "db", "username", "password", "unix_socket_path", "ssl", "socket_timeout",
                   "socket_connect_timeout", "encoding", "encoding_errors", "decode_responses")
        return aioredis.Redis(**{k: v for k, v in kwargs.items() if k in allowed and v is not None})

    async def open_subscription(self) -> Subscription:
        """Subscribe and wait for Redis to confirm, so every event published afterwards is received."""
        client = self._async_client()
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            while True:  # the confirmation arrives on the subscriber's connection
                message = await pubsub.get_message(timeout=None)
                if message is not None and message.get("type") == "subscribe":
                    break
        except BaseException:
            await pubsub.aclose()
            await client.aclose()
            raise
        return Subscription(client, pubsub)

    async def subscribe(self, ready: asyncio.Event | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield every event published on the channel from now on; sets ``ready`` once subscribed."""
        subscription = await self.open_subscription()
        if ready is not None:
            ready.set()
        try:
            async for event in subscription:
                yield event
        finally:
            await subscription.close()

    def close(self) -> None:
        """Close the publishing client (if created)."""
        if self._client is not None:
            self._client.close()
            self._client = None


__all__ = ["CHANNEL", "EventBus", "Subscription", "make_event", "session_created_data",
           "session_destroyed_data", "iso_now"]
