"""One error family, one table to HTTP, and adapters that bring foreign failures into the family."""

from __future__ import annotations

import inspect
import json

import pytest
import redis

from cluster.ops.ports import free_port
from cluster.stores.redis_client import RedisDown, connect
from schema import errors
from serve_app.api.errors import error_response, status_of

EXPECTED_STATUS = {
    "BadRequest": 400, "EmptySTMError": 400, "VectorLengthError": 400, "ConfigValidationError": 400,
    "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "SessionNotFound": 404, "Conflict": 409,
    "PayloadTooLarge": 413,
    "Unprocessable": 422, "ServiceUnavailable": 503, "ServiceStarting": 503, "ShardUnavailable": 503,
    "StoreUnavailable": 503, "StaleShardMap": 503, "RedisUnavailable": 503, "SessionLockTimeout": 503,
    "SessionLockLost": 503,
    "StoreError": 500, "SettingsError": 500, "LauncherError": 500, "KatoError": 500,
}


def family() -> dict[str, type[errors.KatoError]]:
    return {name: cls for name, cls in vars(errors).items()
            if inspect.isclass(cls) and issubclass(cls, errors.KatoError)}


def instance(cls: type[errors.KatoError]) -> errors.KatoError:
    if cls is errors.ConfigValidationError:
        return cls({"recall_threshold": "must be a number"})
    if cls is errors.SessionNotFound:
        return cls("session-x")
    if cls is errors.PayloadTooLarge:
        return cls(1000)
    return cls()


def test_every_class_of_the_family_has_its_status_and_is_drawn_in_the_tree():
    assert set(family()) == set(EXPECTED_STATUS), "a new error class needs its row here"
    for name, cls in family().items():
        assert status_of(instance(cls)) == EXPECTED_STATUS[name], name
        assert name in (errors.__doc__ or ""), f"{name} is missing from the tree in schema/errors.py"


@pytest.mark.parametrize("name", [n for n, s in EXPECTED_STATUS.items() if s == 503])
def test_every_unavailable_answer_says_when_to_retry(name: str):
    response = error_response(instance(family()[name]))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert json.loads(response.body)["detail"]


def test_a_lost_session_lock_is_a_503_with_retry_after_not_a_500():
    response = error_response(errors.SessionLockLost("lock lease on session 'x' expired while held"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert json.loads(response.body) == {"detail": "lock lease on session 'x' expired while held"}


def test_bodies_keep_kato_shapes():
    assert json.loads(error_response(errors.SessionNotFound("s1")).body) == {
        "detail": "Session s1 not found or expired",
        "error": {"code": "SESSION_NOT_FOUND", "message": "Session s1 not found or expired", "session_id": "s1"}}
    config = errors.ConfigValidationError({"persistence": "persistence must be between 1 and 100 (got 0)"})
    assert json.loads(error_response(config).body) == {"detail": {
        "error": "Configuration validation failed",
        "validation_errors": {"persistence": "persistence must be between 1 and 100 (got 0)"}}}
    assert json.loads(error_response(errors.EmptySTMError()).body) == {"detail": "Cannot learn from empty STM"}
    assert json.loads(error_response(errors.PayloadTooLarge(1000)).body) == {
        "detail": "request body exceeds 1000 bytes"}
    assert error_response(errors.Unauthorized("unknown API key")).headers["WWW-Authenticate"] == "Bearer"


def test_the_redis_adapter_turns_an_unreachable_server_into_the_family():
    client = connect(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    for action in (client.ping, lambda: client.pipeline().get("k").execute(),
                   lambda: client.register_script("return 1")()):
        with pytest.raises(RedisDown) as info:
            action()
        assert isinstance(info.value, errors.RedisUnavailable)
        assert isinstance(info.value, redis.ConnectionError)  # code that handles Redis errors itself still does
        assert status_of(info.value) == 503


def test_the_redis_adapter_leaves_other_errors_alone(redis_client):
    kwargs = redis_client.connection_pool.connection_kwargs
    client = connect(f"redis://{kwargs['host']}:{kwargs['port']}/0")
    client.set("a-string", "x")
    with pytest.raises(redis.ResponseError) as info:
        client.hget("a-string", "field")  # WRONGTYPE: a bug of ours, not an outage
    assert not isinstance(info.value, errors.KatoError)

