"""Event fan-out across replicas through Redis pub/sub (spec §4.3 ``WS /ws/events``, checklist 67)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
import redis

from serve_app.events import CHANNEL, EventBus, make_event

pytestmark = pytest.mark.integration

GUARD_SECONDS = 10.0  # only a guard against hanging; no assertion depends on timing


def _bus(url: str) -> EventBus:
    return EventBus(lambda: redis.Redis.from_url(url, decode_responses=True), url=url)


def test_subscriber_receives_events_from_another_replica_in_order(embedded_redis):
    subscriber_bus, publisher_bus = _bus(embedded_redis.url), _bus(embedded_redis.url)

    async def scenario() -> list[dict]:
        ready = asyncio.Event()
        received: list[dict] = []

        async def consume() -> None:
            async for event in subscriber_bus.subscribe(ready):
                received.append(event)
                if len(received) == 4:
                    break

        task = asyncio.create_task(consume())
        await asyncio.wait_for(ready.wait(), GUARD_SECONDS)
        publisher_bus.session_created("s-1", "node-a", "2025-01-01T00:00:00+00:00")
        publisher_bus.session_created("s-2", "node-b", "2025-01-01T00:00:01+00:00")
        publisher_bus.session_destroyed("s-1")
        publisher_bus.publish("system.error", {"message": "boom", "n": 3})
        await asyncio.wait_for(task, GUARD_SECONDS)
        return received

    try:
        events = asyncio.run(scenario())
    finally:
        subscriber_bus.close()
        publisher_bus.close()

    assert [e["event_type"] for e in events] == ["session.created", "session.created", "session.destroyed",
                                                  "system.error"]
    for event in events:
        assert set(event) == {"event_type", "timestamp", "data"}
        datetime.fromisoformat(event["timestamp"])
    assert events[0]["data"] == {"session_id": "s-1", "node_id": "node-a", "created_at": "2025-01-01T00:00:00+00:00"}
    assert events[1]["data"]["node_id"] == "node-b"
    destroyed = events[2]["data"]
    assert set(destroyed) == {"session_id", "destroyed_at", "reason"}
    assert destroyed["session_id"] == "s-1" and destroyed["reason"] == "explicit_delete"
    datetime.fromisoformat(destroyed["destroyed_at"])
    assert events[3]["data"] == {"message": "boom", "n": 3}


def test_every_subscriber_gets_every_event(embedded_redis):
    bus = _bus(embedded_redis.url)

    async def scenario() -> tuple[list[dict], list[dict], dict | None]:
        first = await bus.open_subscription()
        second = await _bus(embedded_redis.url).open_subscription()
        try:
            bus.session_created("s-9", "node-z", "2025-01-01T00:00:00+00:00")
            bus.session_destroyed("s-9", reason="expired")
            got_first = [await first.get(GUARD_SECONDS) for _ in range(2)]
            got_second = [await second.get(GUARD_SECONDS) for _ in range(2)]
            nothing_more = await first.get(timeout=0.05)
        finally:
            await first.close()
            await second.close()
        return got_first, got_second, nothing_more

    try:
        got_first, got_second, nothing_more = asyncio.run(scenario())
    finally:
        bus.close()
    assert got_first == got_second
    assert [e["event_type"] for e in got_first] == ["session.created", "session.destroyed"]
    assert got_first[1]["data"]["reason"] == "expired"
    assert nothing_more is None


def test_published_wire_format_and_foreign_messages(embedded_redis, redis_client):
    """What goes over Redis is the frame as JSON; non-JSON noise on the channel is skipped, not fatal."""
    bus = _bus(embedded_redis.url)

    async def scenario() -> tuple[dict, dict | None]:
        sub = await bus.open_subscription()
        try:
            redis_client.publish(CHANNEL, "not json")
            redis_client.publish(CHANNEL, json.dumps([1, 2]))
            sent = bus.publish("session.created", {"session_id": "s", "node_id": "n", "created_at": "t"})
            received = await sub.get(GUARD_SECONDS)
        finally:
            await sub.close()
        return sent, received

    try:
        sent, received = asyncio.run(scenario())
    finally:
        bus.close()
    assert received == sent
    assert sent["data"] == {"session_id": "s", "node_id": "n", "created_at": "t"}


def test_subscription_from_the_publishing_client_settings(embedded_redis):
    """Without a URL the subscriber reuses the publishing client's connection settings."""
    bus = EventBus(lambda: redis.Redis.from_url(embedded_redis.url))

    async def scenario() -> dict | None:
        async with await bus.open_subscription() as sub:
            bus.publish("heartbeat", {})
            return await sub.get(GUARD_SECONDS)

    try:
        event = asyncio.run(scenario())
    finally:
        bus.close()
    assert event is not None and event["event_type"] == "heartbeat" and event["data"] == {}


def test_snapshot_shape():
    frame = EventBus.snapshot(active_sessions=7)
    assert set(frame) == {"event_type", "timestamp", "data"}
    assert frame["event_type"] == "state.snapshot"
    assert frame["data"] == {"active_sessions": 7, "system_status": "healthy"}
    datetime.fromisoformat(frame["timestamp"])
    assert make_event("x", {"a": 1}, timestamp="t") == {"event_type": "x", "timestamp": "t", "data": {"a": 1}}
