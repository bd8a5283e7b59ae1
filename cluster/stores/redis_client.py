"""The Redis client the service uses: redis-py with its connection failures turned into ``RedisUnavailable``.

This is where Redis crosses into the project. A client from ``connect`` raises ``RedisDown`` (a
``schema.errors.RedisUnavailable``, so a 503 with Retry-After, and still a ``redis.ConnectionError`` for code
that handles Redis errors itself) when the server is unreachable, loading its data set, or read-only; every other
Redis error passes through unchanged (it would be a bug of ours).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.client import Pipeline
from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schema.errors import RedisUnavailable

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError)


class RedisDown(RedisUnavailable, RedisConnectionError):
    """Redis is unavailable; retry shortly"""

    def __init__(self, reason: str = "") -> None:
        super().__init__("Redis is unavailable; retry shortly")
        self.reason = reason


@contextmanager
def unavailable_as_kato() -> Iterator[None]:
    try:
        yield
    except RedisDown:
        raise
    except UNAVAILABLE as error:
        raise RedisDown(str(error).splitlines()[0] if str(error) else type(error).__name__) from error


class TranslatingPipeline(Pipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        with unavailable_as_kato():
            return super().execute(raise_on_error)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        with unavailable_as_kato():
            return super().immediate_execute_command(*args, **options)


class TranslatingRedis(redis.Redis):
    def execute_command(self, *args: Any, **options: Any) -> Any:
        with unavailable_as_kato():
            return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> TranslatingPipeline:
        return TranslatingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def connect(url: str, decode: bool = True, **options: Any) -> redis.Redis:
    """A client for ``url`` (answers decoded to str unless ``decode`` is False) whose unavailability errors are
    ``RedisDown``."""
    return TranslatingRedis.from_url(url, decode_responses=decode, **options)
