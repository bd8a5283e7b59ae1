"""Sessions in Redis as KATO keeps them (spec §3.6, §4.4), plus a cluster-wide per-session lock (§4.5).

- ``kato:session:{id}``: the session JSON; the key's TTL is the session's expiry (authoritative; the JSON's
  ``expires_at`` is refreshed on save/extend only).
- ``kato:session:_active_index``: SET of session ids, pruned of ids whose key expired when counting.
- ``kato:session:node:{node_id}:active``: the node's current session id (get-or-create), same TTL.
- ``kato:session_predictions:{id}``: the session's observe-time predictions (shown by cognition-data), same
  TTL. KATO keeps them inside the session JSON; apart, the operations that do not touch them (every one but
  observe, learn, clear-stm and cognition-data) neither parse nor rewrite them.
- ``kato:session_pending_predictions:{id}``: an observe's predictions not computed yet (what to compute them
  from: kb_id, STM, config, unique_id, a record id), same TTL; replaced by the predictions once settled
  (``serve_app.pending_predictions``). ``kato:kb_pending_predictions:{kb_id}``: SET of the session ids that
  may hold one for that KB: a learn keeps what it overwrites for them in ``kato:session_pending_overlay:{id}``
  (``cluster.stores.kb_overlay``; same TTL, gone with the record), any other change settles them first.

Expired vs gone: Redis drops an expired key, so a record that is "expired but not yet reaped" cannot be
seen. ``exists`` reports ``expired=True`` for an id still in the active index whose key has expired
(we knew it, its TTL ran out) and ``expired=False`` for an id that was deleted or never existed.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import redis

from cluster.stores.kb_overlay import KBOverlay, next_overlay_key, overlay_key
from cluster.stores.key_space import hash_tag
from schema.errors import SessionLockLost, SessionLockTimeout

SESSION_PREFIX = "kato:session:"
PREDICTIONS_PREFIX = "kato:session_predictions:"
PENDING_PREFIX = "kato:session_pending_predictions:"
KB_PENDING_PREFIX = "kato:kb_pending_predictions:"
ACTIVE_INDEX = "kato:session:_active_index"
LOCK_PREFIX = "kato:lock:session:"
DEFAULT_TTL_SECONDS = 3600

# Release a lock we still hold; with a TTL (ARGV[2]), also slide the expiry of the other keys (a session touched).
_RELEASE = """
local released = 0
if redis.call('get', KEYS[1]) == ARGV[1] then
    released = redis.call('del', KEYS[1])
end
if ARGV[2] and ARGV[2] ~= '' then
    for i = 2, #KEYS do
        redis.call('expire', KEYS[i], ARGV[2])
    end
end
return released
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# Take a session's lock and read the session in one round trip: {1, json} once held, {0} while someone holds it.
_CHECKOUT = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {0}
end
return {1, redis.call('get', KEYS[2])}
"""
# Store a session record with its side keys (see ``SessionStore.save``) and, when ARGV[1] names our lock token,
# release that lock in the same step; nothing is written (0) when the lock is no longer ours. A pending record
# (ARGV[7] its id) gets its overlay (``cluster.stores.kb_overlay``): the one a learn of this request made for it
# (KEYS[9]), else a new one.
_SAVE = """
local token = ARGV[1]
if token ~= '' and redis.call('get', KEYS[7]) ~= token then
    return 0
end
local ttl = ARGV[3]
redis.call('set', KEYS[1], ARGV[2], 'EX', ttl)
if ARGV[4] == 'pending' then
    redis.call('set', KEYS[2], ARGV[5], 'EX', ttl)
    redis.call('del', KEYS[3])
    if redis.call('hget', KEYS[9], '@record') == ARGV[7] then
        redis.call('rename', KEYS[9], KEYS[8])
    elseif redis.call('hget', KEYS[8], '@record') ~= ARGV[7] then
        redis.call('del', KEYS[8])
        redis.call('hset', KEYS[8], '@record', ARGV[7])
    end
    redis.call('expire', KEYS[8], ttl)
    redis.call('sadd', KEYS[4], ARGV[6])
elseif ARGV[4] == 'predictions' then
    redis.call('set', KEYS[3], ARGV[5], 'EX', ttl)
    redis.call('del', KEYS[2], KEYS[8])
else
    redis.call('expire', KEYS[3], ttl)
    redis.call('expire', KEYS[2], ttl)
    redis.call('expire', KEYS[8], ttl)
end
redis.call('sadd', KEYS[5], ARGV[6])
redis.call('set', KEYS[6], ARGV[6], 'EX', ttl)
if token ~= '' then
    redis.call('del', KEYS[7])
end
return 1
"""
# A session (and its predictions when ARGV[2] is '1') in one round trip; with ARGV[3] '1' its keys' expiry slides
# to its own ttl_seconds (ARGV[1] when the record has none).
_READ = """
local raw = redis.call('get', KEYS[1])
if not raw then
    return {false}
end
local predictions = false
if ARGV[2] == '1' then
    predictions = redis.call('get', KEYS[2])
end
if ARGV[3] == '1' then
    local ttl = tonumber(ARGV[1])
    local ok, record = pcall(cjson.decode, raw)
    if ok and type(record) == 'table' then
        local own = tonumber(record['ttl_seconds'])
        if own and own > 0 then
            ttl = math.floor(own)
        end
    end
    for i = 1, #KEYS do
        redis.call('expire', KEYS[i], ttl)
    end
end
local pending = false
if ARGV[4] == '1' then
    pending = redis.call('get', KEYS[3])
end
return {raw, predictions, pending}
"""

# Store the settled predictions only if the pending record is still the one they were computed from (a later
# observe or a clear-stm may have replaced it meanwhile); with ARGV[4] = '1', only if no learn has written to the
# record's overlay either (the predictions were computed over the KB as it is, not through the overlay).
_SETTLE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[4] == '1' and redis.call('hlen', KEYS[4]) > redis.call('hexists', KEYS[4], '@record') then
    return 0
end
local ttl = redis.call('pttl', KEYS[1])
if ttl > 0 then
    redis.call('set', KEYS[2], ARGV[2], 'PX', ttl)
else
    redis.call('set', KEYS[2], ARGV[2])
end
redis.call('del', KEYS[1], KEYS[4])
redis.call('srem', KEYS[3], ARGV[3])
return 1
"""
# Forget a session in a KB's pending set only while it has nothing pending (an observe may add one at any time).
_FORGET_SETTLED = """
if redis.call('exists', KEYS[1]) == 0 then
    return redis.call('srem', KEYS[2], ARGV[1])
end
return 0
"""


def session_key(session_id: str, tag: str = "") -> str:
    return f"{tag}{SESSION_PREFIX}{session_id}"


def is_session_id(session_id: str) -> bool:
    """Whether ``session_id`` could name a session: ids never contain ':' nor start with '_', so the other keys
    under ``kato:session:`` (the active index, the node pointers) are never read, reported or deleted as one."""
    return bool(session_id) and ":" not in session_id and not session_id.startswith("_")


def predictions_key(session_id: str, tag: str = "") -> str:
    return f"{tag}{PREDICTIONS_PREFIX}{session_id}"


def pending_key(session_id: str, tag: str = "") -> str:
    return f"{tag}{PENDING_PREFIX}{session_id}"


def kb_pending_key(kb_id: str, tag: str = "") -> str:
    return f"{tag}{KB_PENDING_PREFIX}{kb_id}"


def node_active_key(node_id: str, tag: str = "") -> str:
    return f"{tag}{SESSION_PREFIX}node:{node_id}:active"


_APART = ("predictions", "pending_predictions")  # stored beside the session JSON, not in it


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class SessionStore:
    def __init__(self, client: redis.Redis, default_ttl: int = DEFAULT_TTL_SECONDS) -> None:
        self.client = client
        self.default_ttl = default_ttl
        self.tag = tag = hash_tag(client)
        self.active_index = tag + ACTIVE_INDEX
        self._release = client.register_script(_RELEASE)
        self._take = client.register_script(_CHECKOUT)
        self._save = client.register_script(_SAVE)
        self._read = client.register_script(_READ)
        self._renewer = LeaseRenewer(client.register_script(_RENEW))
        self._settle = client.register_script(_SETTLE)
        self._forget_settled = client.register_script(_FORGET_SETTLED)

    # -------------------------------------------------------------- lifecycle
    def create(self, node_id: str, ttl_seconds: int | None = None, session_id: str | None = None,
               **fields: Any) -> dict[str, Any]:
        """A fresh session record (KATO's fields; ``fields`` override defaults), stored with its TTL."""
        ttl = int(ttl_seconds if ttl_seconds is not None else self.default_ttl)
        now = _now()
        session: dict[str, Any] = {
            "session_id": session_id or f"session-{uuid.uuid4().hex}",
            "node_id": node_id,
            "created_at": now.isoformat(),
            "last_accessed": now.isoformat(),
            "expires_at": (now + timedelta(seconds=ttl)).isoformat(),
            "ttl_seconds": ttl,
            "stm": [],
            "emotives_accumulator": [],
            "metadata_accumulator": [],
            "time": 0,
            "percept_data": {},
            "predictions": [],
            "session_config": {},
            "metadata": {},
            "access_count": 0,
            "max_stm_size": 1000,
            "max_emotives_size": 1000,
            "max_metadata_size": 1000,
        }
        session.update(fields)
        self.save(session)
        return session

    def save(self, session: dict[str, Any]) -> None:
        """Store the record and reset its expiry to now + its own ``ttl_seconds``. A ``pending_predictions``
        record replaces the stored predictions; else ``predictions`` are written when present and not None;
        otherwise the stored ones (or the pending record) are kept."""
        self._write(session, "", "")

    def _write(self, session: dict[str, Any], lock_key: str, token: str) -> bool:
        """``save`` in one atomic step; with ``token``, only while ``lock_key`` holds it, releasing it (False: the
        lock was no longer ours and nothing was written)."""
        ttl = int(session.get("ttl_seconds") or self.default_ttl)
        now = _now()
        session["last_accessed"] = now.isoformat()
        session["expires_at"] = (now + timedelta(seconds=ttl)).isoformat()
        sid = session["session_id"]
        predictions = session.get("predictions")
        pending = session.get("pending_predictions")
        record_id = ""
        if pending is not None:
            mode, payload = "pending", json.dumps(pending).encode()
            kb_pending = kb_pending_key(pending["kb_id"], self.tag)
            record_id = pending["record"]
        elif predictions is not None:
            mode, payload, kb_pending = "predictions", orjson.dumps(predictions), self.tag + KB_PENDING_PREFIX
        else:
            mode, payload, kb_pending = "keep", b"", self.tag + KB_PENDING_PREFIX
        record = json.dumps({k: v for k, v in session.items() if k not in _APART})
        tag = self.tag
        keys = [session_key(sid, tag), pending_key(sid, tag), predictions_key(sid, tag), kb_pending, self.active_index,
                node_active_key(session["node_id"], tag), lock_key or f"{tag}{LOCK_PREFIX}{sid}", overlay_key(sid, tag),
                next_overlay_key(sid, tag)]
        return bool(self._save(keys=keys, args=[token, record, ttl, mode, payload, sid, record_id]))

    def get(self, session_id: str, touch: bool = True, with_predictions: bool = False) -> dict[str, Any] | None:
        """The record, or None if absent/expired; ``touch`` slides the key TTL (SESSION_AUTO_EXTEND).
        ``predictions`` is in the record only ``with_predictions``. One round trip."""
        return self._get(session_id, touch, with_predictions, with_pending=False)[0]

    def read(self, session_id: str, touch: bool = True) -> tuple[dict[str, Any] | None, str | None]:
        """``get``, and the session's pending-predictions record as stored (JSON text) or None, read at the same
        moment. One round trip."""
        return self._get(session_id, touch, with_predictions=False, with_pending=True)

    def _get(self, session_id: str, touch: bool, with_predictions: bool, with_pending: bool
             ) -> tuple[dict[str, Any] | None, str | None]:
        if not is_session_id(session_id):
            return None, None
        keys = [session_key(session_id, self.tag), predictions_key(session_id, self.tag),
                pending_key(session_id, self.tag), overlay_key(session_id, self.tag)]
        reply = self._read(keys=keys, args=[self.default_ttl, int(with_predictions), int(touch), int(with_pending)])
        raw = reply[0] if reply else None
        if raw is None:
            return None, None
        session = json.loads(_text(raw))
        if with_predictions:
            raw_predictions = reply[1] if len(reply) > 1 else None
            session["predictions"] = orjson.loads(raw_predictions) if raw_predictions is not None else []
        pending = reply[2] if len(reply) > 2 else None
        return session, (None if pending is None else _text(pending))

    def delete(self, session_id: str) -> bool:
        if not is_session_id(session_id):
            return False
        raw = self.client.get(session_key(session_id, self.tag))
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(session_key(session_id, self.tag))
        pipe.srem(self.active_index, session_id)
        pipe.delete(predictions_key(session_id, self.tag))
        pipe.delete(pending_key(session_id, self.tag), overlay_key(session_id, self.tag),
                    next_overlay_key(session_id, self.tag))
        deleted = bool(pipe.execute()[0])
        if raw is not None:  # drop the node pointer only if it still points at this session
            node_key = node_active_key(json.loads(_text(raw))["node_id"], self.tag)
            self._release(keys=[node_key], args=[session_id])
        return deleted

    def exists(self, session_id: str) -> dict[str, bool]:
        """``{"exists", "expired"}`` as ``/sessions/{id}/exists`` reports it (see module doc); no touch."""
        if not is_session_id(session_id):
            return {"exists": False, "expired": False}
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(session_key(session_id, self.tag))
        pipe.sismember(self.active_index, session_id)
        present, indexed = pipe.execute()
        return {"exists": bool(present), "expired": bool(not present and indexed)}

    def extend(self, session_id: str, ttl_seconds: int) -> bool:
        """Set this session's expiry to now + ``ttl_seconds`` (its stored ``ttl_seconds`` is unchanged)."""
        if not is_session_id(session_id):
            return False
        raw = self.client.get(session_key(session_id, self.tag))
        if raw is None:
            return False
        session = json.loads(_text(raw))
        session["expires_at"] = (_now() + timedelta(seconds=int(ttl_seconds))).isoformat()
        pipe = self.client.pipeline(transaction=True)
        pipe.set(session_key(session_id, self.tag), json.dumps(session), ex=int(ttl_seconds))
        pipe.expire(predictions_key(session_id, self.tag), int(ttl_seconds))
        pipe.expire(pending_key(session_id, self.tag), int(ttl_seconds))
        pipe.expire(overlay_key(session_id, self.tag), int(ttl_seconds))
        pipe.expire(node_active_key(session["node_id"], self.tag), int(ttl_seconds))
        pipe.execute()
        return True

    # ------------------------------------------------------ pending predictions
    def pending(self, session_id: str) -> tuple[str | None, KBOverlay]:
        """The session's pending-predictions record as stored (JSON text), or None, and what the learns since
        its observe changed (``cluster.stores.kb_overlay``)."""
        if not is_session_id(session_id):
            return None, KBOverlay()
        pipe = self.client.pipeline(transaction=True)
        pipe.get(pending_key(session_id, self.tag))
        pipe.hgetall(overlay_key(session_id, self.tag))
        raw, fields = pipe.execute()
        return (None if raw is None else _text(raw)), KBOverlay(fields)

    def settle(self, session_id: str, pending: str, predictions: list[dict[str, Any]],
               if_unchanged: bool = False) -> bool:
        """Store ``predictions`` in place of ``pending`` unless that record was replaced meanwhile; with
        ``if_unchanged``, only if no learn has changed the KB since its observe either."""
        kb_id = json.loads(pending)["kb_id"]
        return bool(self._settle(keys=[pending_key(session_id, self.tag), predictions_key(session_id, self.tag),
                                       kb_pending_key(kb_id, self.tag), overlay_key(session_id, self.tag)],
                                 args=[pending, orjson.dumps(predictions), session_id, int(if_unchanged)]))

    def pending_sessions(self, kb_id: str) -> list[str]:
        return sorted(_text(sid) for sid in self.client.smembers(kb_pending_key(kb_id, self.tag)))

    def forget_settled(self, kb_id: str, session_id: str) -> None:
        self._forget_settled(keys=[pending_key(session_id, self.tag), kb_pending_key(kb_id, self.tag)],
                             args=[session_id])

    def active_for_node(self, node_id: str) -> str | None:
        """The node's current session id if that session is still alive."""
        sid = self.client.get(node_active_key(node_id, self.tag))
        if sid is None:
            return None
        sid = _text(sid)
        return sid if self.client.exists(session_key(sid, self.tag)) else None

    def count(self) -> int:
        """Live sessions; ids whose key has expired are pruned from the index first."""
        ids = [_text(i) for i in self.client.sscan_iter(self.active_index, count=1000)]
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for sid in ids:
            pipe.exists(session_key(sid, self.tag))
        alive = pipe.execute()
        dead = [sid for sid, ok in zip(ids, alive) if not ok]
        if dead:
            self.client.srem(self.active_index, *dead)
        return len(ids) - len(dead)

    # ------------------------------------------------------------------- lock
    @contextmanager
    def lock(self, session_id: str, timeout: float = 10.0, blocking_timeout: float | None = None,
             renew: bool = True) -> Iterator[str]:
        """Cluster-wide mutual exclusion on one session, from any process.

        ``timeout`` is the lease: a holder that dies releases it after that many seconds; a live holder
        renews it every third of the lease (unless ``renew`` is False), so long operations (a big
        observe-sequence) keep it. Acquisition waits at most ``blocking_timeout`` (default ``timeout``) and then
        raises ``SessionLockTimeout``. Release deletes the key only if it still holds our token (a lease that ran
        out is not stolen back).
        """
        key, token, lease_ms = self._lock_terms(session_id, timeout)
        self._acquire(session_id, timeout, blocking_timeout,
                      lambda: self.client.set(key, token, nx=True, px=lease_ms) or None)
        try:
            with self._renewed(key, token, lease_ms, renew):
                yield token
        finally:
            released = bool(self._release(keys=[key], args=[token]))
        if not released:
            raise SessionLockLost(f"lock lease on session {session_id!r} expired while held")

    @contextmanager
    def checkout(self, session_id: str, timeout: float = 10.0) -> Iterator[Checkout]:
        """A session under its lock (``lock``'s lease and renewal), taken and read in one round trip; the
        checkout's ``save`` writes the session and releases the lock in one more. Left unsaved (an error), the
        lock is released and the session's expiry slides as a read's would."""
        if not is_session_id(session_id):
            yield Checkout(self, session_id, "", "", None)
            return
        key, token, lease_ms = self._lock_terms(session_id, timeout)
        record_key = session_key(session_id, self.tag)
        reply = self._acquire(session_id, timeout, None, lambda: self._take(keys=[key, record_key],
                                                                             args=[token, lease_ms]))
        raw = reply[1] if len(reply) > 1 else None
        held = Checkout(self, session_id, key, token, json.loads(_text(raw)) if raw is not None else None)
        with self._renewed(key, token, lease_ms, True):
            try:
                yield held
            finally:
                if not held.done:
                    ttl = int((held.record or {}).get("ttl_seconds") or self.default_ttl)
                    touched = [record_key, predictions_key(session_id, self.tag), pending_key(session_id, self.tag),
                               overlay_key(session_id, self.tag)]
                    self._release(keys=[key, *(touched if held.record is not None else [])], args=[token, ttl])

    def _lock_terms(self, session_id: str, timeout: float) -> tuple[str, str, int]:
        return f"{self.tag}{LOCK_PREFIX}{session_id}", secrets.token_hex(16), max(1, int(timeout * 1000))

    @staticmethod
    def _acquire(session_id: str, timeout: float, blocking_timeout: float | None, attempt: Callable[[], Any]) -> Any:
        """Call ``attempt`` until it answers (not None, not ``[0]``), backing off; ``SessionLockTimeout`` after
        ``blocking_timeout`` (default ``timeout``) seconds."""
        deadline = time.monotonic() + (timeout if blocking_timeout is None else blocking_timeout)
        pause = 0.002
        while True:
            reply = attempt()
            if reply is not None and reply != [0]:
                return reply
            if time.monotonic() >= deadline:
                raise SessionLockTimeout(f"session {session_id!r} is locked by another request")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @contextmanager
    def _renewed(self, key: str, token: str, lease_ms: int, renew: bool) -> Iterator[None]:
        if not renew:
            yield
            return
        self._renewer.hold(key, token, lease_ms)
        try:
            yield
        finally:
            self._renewer.drop(key, token)


class Checkout:
    """A session held under its lock (``SessionStore.checkout``): ``record`` as read (None: no such session)."""

    def __init__(self, store: SessionStore, session_id: str, key: str, token: str, record: dict[str, Any] | None):
        self.store = store
        self.session_id = session_id
        self.key = key
        self.token = token
        self.record = record
        self.done = False

    def save(self, session: dict[str, Any]) -> None:
        """Write ``session`` and release the lock in one step; ``SessionLockLost`` (nothing written) when the
        lease ran out and the lock is no longer ours."""
        self.done = True
        if not self.store._write(session, self.key, self.token):
            raise SessionLockLost(f"lock lease on session {self.session_id!r} expired while held")


class LeaseRenewer:
    """One thread renewing every lock this process holds, each every third of its lease, until dropped (or the
    lock turns out not to be ours any more)."""

    def __init__(self, renew: Callable[..., Any]):
        self._renew = renew
        self._held: dict[tuple[str, str], tuple[int, float]] = {}  # (key, token) -> (lease_ms, next renewal)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def hold(self, key: str, token: str, lease_ms: int) -> None:
        with self._wake:
            self._held[(key, token)] = (lease_ms, time.monotonic() + lease_ms / 3000)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="session-lock-renewer", daemon=True)
                self._thread.start()
            self._wake.notify()

    def drop(self, key: str, token: str) -> None:
        with self._wake:
            self._held.pop((key, token), None)

    def _due(self) -> list[tuple[str, str, int]]:
        with self._wake:
            while True:
                now = time.monotonic()
                due = [(key, token, lease) for (key, token), (lease, at) in self._held.items() if at <= now]
                if due:
                    for key, token, lease in due:
                        self._held[(key, token)] = (lease, now + lease / 3000)
                    return due
                nearest = min((at for _, at in self._held.values()), default=None)
                self._wake.wait(None if nearest is None else max(0.0, nearest - now))

    def _run(self) -> None:
        while True:
            for key, token, lease_ms in self._due():
                try:
                    renewed = self._renew(keys=[key], args=[token, lease_ms])
                except redis.RedisError:
                    renewed = 0
                if not renewed:
                    self.drop(key, token)
