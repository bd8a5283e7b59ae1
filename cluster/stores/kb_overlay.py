"""The KB as an observe saw it: the values a learn changed since then, kept for that observe's pending predictions.

An observe leaves its predictions pending (``serve_app.pending_predictions``); they must be computed over the KB
as it was when the observe answered. A learn does not wait for that: its commit (``cluster.stores.learn_commit``,
one Lua step) writes, for every session with a pending record on the KB, the value each key or hash field had
before the learn changed it, into that session's overlay hash ``kato:session_pending_overlay:{session id}``. The
first value written for a field wins (HSETNX), so after any number of learns the overlay holds the values of the
observe's moment. The overlay lives and dies with its pending record (replaced, settled, deleted, expired). A
record not stored yet has its overlay under ``kato:session_pending_overlay_next:{session id}`` until it is.

Fields of the overlay hash (bytes; ``len`` is the byte length of the key):
- ``s{key}``: a string key (``SET``/``INCRBY``);
- ``h{len(key)}:{key}{field}``: a hash field (``HINCRBY``/``HINCRBYFLOAT``/``HSET``);
and each value is ``={old value}``, or ``-`` when the key or field did not exist. A pattern a learn creates is
marked as ``s{its KATO frequency key}`` = ``-`` in either Redis layout (``cluster.stores.pattern_layout``).
``@record`` names the pending record the overlay belongs to (the session's save starts a new overlay for a new
record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cluster.stores.kb_keys import KBKeys
from cluster.stores.pattern_layout import Slot

OVERLAY_PREFIX = "kato:session_pending_overlay:"
NEXT_OVERLAY_PREFIX = "kato:session_pending_overlay_next:"
ABSENT = b"-"
RECORD_FIELD = b"@record"  # the id of the pending record the overlay belongs to


def overlay_key(session_id: str, tag: str = "") -> str:
    """The overlay of the session's stored pending record (``tag``: the deployment's hash tag)."""
    return f"{tag}{OVERLAY_PREFIX}{session_id}"


def next_overlay_key(session_id: str, tag: str = "") -> str:
    """The overlay of a record a request has made but not stored yet (an observe-sequence that learns): its own
    key, so that the stored record, still pending and perhaps being computed, keeps its overlay; the session's
    save moves it into place."""
    return f"{tag}{NEXT_OVERLAY_PREFIX}{session_id}"


def _string_field(key: str) -> bytes:
    return b"s" + key.encode()


def _hash_prefix(key: str) -> bytes:
    raw = key.encode()
    return b"h" + str(len(raw)).encode() + b":" + raw


class KBOverlay:
    """Reads through an overlay: ``current`` values as read now, answered as they were at the observe."""

    def __init__(self, fields: Mapping[bytes | str, bytes | str] | None = None) -> None:
        """``fields`` as HGETALL answers them (bytes, or str from a client that decodes responses)."""
        pairs = ((_bytes(f), _bytes(v)) for f, v in (fields or {}).items())
        self.fields = {f: v for f, v in pairs if not f.startswith(RECORD_FIELD)}

    def __bool__(self) -> bool:
        return bool(self.fields)

    def string(self, key: str, current: bytes | None) -> bytes | None:
        old = self.fields.get(_string_field(key))
        return current if old is None else _value(old)

    def strings(self, keys: list[str], current: list[bytes | None]) -> list[bytes | None]:
        if not self.fields:
            return current
        return [self.string(k, v) for k, v in zip(keys, current)]

    def values(self, slots: Sequence[Slot], current: list[bytes | None]) -> list[bytes | None]:
        """Values of string keys or hash fields (``cluster.stores.pattern_layout.Slot``) as they were."""
        if not self.fields:
            return current
        out = []
        for slot, value in zip(slots, current):
            if slot.field is None:
                out.append(self.string(slot.key, value))
            else:
                old = self.fields.get(_hash_prefix(slot.key) + slot.field)
                out.append(value if old is None else _value(old))
        return out

    def hash_fields(self, key: str, fields: list[str], current: list[bytes | None]) -> list[bytes | None]:
        if not self.fields:
            return current
        prefix = _hash_prefix(key)
        return [_value(old) if (old := self.fields.get(prefix + f.encode())) is not None else v
                for f, v in zip(fields, current)]

    def hash_all(self, key: str, current: Mapping[bytes | str, bytes | str]) -> Mapping[bytes | str, bytes | str]:
        """A whole hash (HGETALL) as it was: changed fields restored, fields created since removed."""
        changed = self._changed(key)
        if not changed:
            return current
        result: dict[bytes | str, bytes | str] = {_bytes(f): _bytes(v) for f, v in current.items()}
        for field, old in changed:
            value = _value(old)
            if value is None:
                result.pop(field, None)
            else:
                result[field] = value
        return result

    def hash_length(self, key: str, current: int) -> int:
        """HLEN as it was: the fields created since are not counted."""
        return current - sum(1 for _, old in self._changed(key) if old == ABSENT)

    def learned(self, keys: KBKeys) -> tuple[str, ...]:
        """The names of the patterns the learns created in that KB (their frequency key did not exist), sorted."""
        head = _string_field(keys.frequency(""))
        return tuple(sorted(f[len(head):].decode() for f, old in self.fields.items()
                            if old == ABSENT and f.startswith(head)))

    def _changed(self, key: str) -> list[tuple[bytes, bytes]]:
        prefix = _hash_prefix(key)
        return [(f[len(prefix):], old) for f, old in self.fields.items() if f.startswith(prefix)]


def _bytes(value: bytes | str) -> bytes:
    """Bytes of a field as read; a decoding client reads the compact layout's binary fields with surrogate escapes
    (``cluster.stores.redis_client.connect``)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _value(old: bytes) -> bytes | None:
    return None if old == ABSENT else old[1:]
