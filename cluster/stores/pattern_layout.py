"""Where a KB's per-pattern values (frequency, emotives, metadata) live in Redis: KATO's layout or the compact one.

- ``kato`` (the default): KATO's three string keys per pattern, ``{kb}:frequency:{name}``, ``{kb}:emotives:{name}``
  (``[]`` when none) and ``{kb}:metadata:{name}`` (``{}`` when none), which KATO's own tools and fixtures read;
  about 430 B of Redis per pattern.
- ``compact``: the values in small hashes, one per bucket of names (the first three hex digits of the pattern's
  SHA-1 name: 4,096 buckets per KB). The field is the next 16 hex digits as 8 bytes, so a pattern is known by 76
  bits of its SHA-1 (two patterns of one KB share a field with probability about n²/2⁷⁷: 7·10⁻¹⁰ at 10M). Frequencies
  are in ``{kb}:pf:{bucket}``; emotives and metadata in ``{kb}:pe:{bucket}`` and ``{kb}:pm:{bucket}``, only for
  patterns that have some (absent means ``[]``/``{}``). Redis keeps a hash of up to ``hash-max-listpack-entries``
  fields as one listpack (12 B per pattern, 13–15 B with the allocator's rounding); the embedded redis-server
  of a compact deployment raises that bound to ``LISTPACK_ENTRIES`` so that buckets stay listpacks up to about 15M
  patterns per KB. The bound is global, and a listpack is scanned on every access: the symbol-statistics hashes
  of a KB with fewer symbols than the bound then cost about 10–25 µs per update instead of under 1 µs (about 1 ms
  more per learn of 15 symbols, measured), which is why KATO's layout keeps Redis's default.
- ``compact:65536`` and ``compact:1048576``: the same with four or five hex digits of buckets, for KBs of up to
  about 250M or 4B patterns (a small KB then pays a key per bucket it uses, about 100 B each); their names keep
  80 or 84 bits (a collision in a KB of a billion patterns: about 3·10⁻⁸).

Finalize-training's per-pattern values stay KATO's keys in both layouts. A deployment's layout is written to Redis
on its first start (``LAYOUT_KEY``) and a start with the other one is refused: the data would be read wrongly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from cluster.stores.kb_keys import KBKeys
from schema.errors import SettingsError

KATO = "kato"
COMPACT = "compact"
_BUCKET_DIGITS = {COMPACT: 3, f"{COMPACT}:65536": 4, f"{COMPACT}:1048576": 5}
LAYOUTS = (KATO, *_BUCKET_DIGITS)
LAYOUT_KEY = "kato-cluster:redis_layout"
LISTPACK_ENTRIES = 4096
_FIELD_DIGITS = 16
_HEX = frozenset("0123456789abcdef")

# Sent whole (EVAL, never EVALSHA): a pipeline then needs no script check first, nor a retry after Redis restarts.
_HGET_MANY = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('hget', key, ARGV[i]) end
return out
"""


@dataclass(frozen=True)
class Slot:
    """Where one value lives: a string key (``field`` None, KATO's layout) or a field of a hash."""

    key: str
    field: bytes | None = None


class PatternLayout:
    """KATO's layout: one string key per pattern and value."""

    name = KATO
    writes_empty = True  # an empty emotives list or metadata dict is stored (``[]``, ``{}``)

    def frequency(self, keys: KBKeys, name: str) -> Slot:
        return Slot(keys.frequency(name))

    def emotives(self, keys: KBKeys, name: str) -> Slot:
        return Slot(keys.emotives(name))

    def metadata(self, keys: KBKeys, name: str) -> Slot:
        return Slot(keys.metadata(name))

    def queue_read(self, pipe: Any, slots: Sequence[Slot]) -> None:
        """Queue one command on ``pipe`` whose reply is the values of ``slots`` in order (None where absent)."""
        pipe.mget([s.key for s in slots])


class CompactLayout(PatternLayout):
    writes_empty = False

    def __init__(self, name: str = COMPACT) -> None:
        self.name = name
        self.digits = _BUCKET_DIGITS[name]

    def frequency(self, keys: KBKeys, name: str) -> Slot:
        return self._slot(keys, "pf", name)

    def emotives(self, keys: KBKeys, name: str) -> Slot:
        return self._slot(keys, "pe", name)

    def metadata(self, keys: KBKeys, name: str) -> Slot:
        return self._slot(keys, "pm", name)

    def _slot(self, keys: KBKeys, kind: str, name: str) -> Slot:
        if len(name) == 40 and _HEX.issuperset(name):
            return Slot(f"{keys.prefix}{kind}:{name[:self.digits]}",
                        bytes.fromhex(name[self.digits:self.digits + _FIELD_DIGITS]))
        return Slot(f"{keys.prefix}{kind}:~", name.encode())  # not a SHA-1 name (never made here): kept whole

    def queue_read(self, pipe: Any, slots: Sequence[Slot]) -> None:
        pipe.eval(_HGET_MANY, len(slots), *[s.key for s in slots], *[s.field or b"" for s in slots])


def listpack_entries_for(name: str) -> int | None:
    """The ``hash-max-listpack-entries`` a Redis of this layout is started with (None: Redis's default)."""
    return None if layout_for(name).name == KATO else LISTPACK_ENTRIES


def layout_for(name: str) -> PatternLayout:
    if name == KATO:
        return PatternLayout()
    if name in _BUCKET_DIGITS:
        return CompactLayout(name)
    raise SettingsError(f"redis_layout must be one of {', '.join(LAYOUTS)} (got {name!r})")


def claim_layout(client: redis.Redis, name: str, tag: str = "") -> None:
    """Record the deployment's layout on its first start; refuse a start with the other one (``tag``: the
    deployment's hash tag on a Redis Cluster)."""
    layout_for(name)
    key = tag + LAYOUT_KEY
    if client.get(key) is None:  # a deployment from before the layouts were recorded holds KATO's
        held_kato = name != KATO and next(client.scan_iter(match="*:frequency:*", count=10_000), None) is not None
        client.set(key, KATO if held_kato else name, nx=True)
    held = client.get(key)
    held = held.decode() if isinstance(held, bytes) else held
    if held != name:
        raise SettingsError(f"this Redis holds KBs in the {held!r} layout; redis_layout is {name!r}. Start with "
                            f"KATO_REDIS_LAYOUT={held}, or export the KBs and load them into a new deployment")
