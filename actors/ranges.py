"""Which home buckets a shard answers for, at each shard-map version it can serve.

Outside a reshard a shard holds exactly its range and answers every query whole. During one it may also hold
rows it is receiving (its target range) or rows it is giving away; each query names the map version it was
routed by, and the shard answers for that version's range only, so a query sees every pattern exactly once:
before the cut-over from the old owners, after it from the new ones. After the cut-over the shard still
answers the previous version (queries in flight) until it has dropped what it gave away (``settled``).
"""

from __future__ import annotations

from schema.errors import StaleShardMap
from schema.placement import ShardMap, Transfer

EMPTY = (1, 0)  # no bucket: lo > hi


class ShardRanges:
    def __init__(self, shard_id: int, lo: int, hi: int, maps=None) -> None:
        """``maps``: a ``cluster.stores.shard_map.ShardMapStore`` (None: a fixed range, no reshards)."""
        self.shard_id = shard_id
        self.fixed = (lo, hi)
        self.maps = maps
        self.map: ShardMap | None = maps.load() if maps is not None else None
        self.previous: ShardMap | None = None
        self.exact = not self._involved(self.map)

    def _involved(self, shard_map: ShardMap | None) -> bool:
        return shard_map is not None and any(self.shard_id in (t.src, t.dst) for t in shard_map.moving)

    def load_ranges(self) -> list[tuple[int, int]]:
        """What to load at start: the range of the current version, and the target's while a reshard runs."""
        if self.map is None:
            return [self.fixed]
        versions = [self.map.version] + ([self.map.version + 1] if self.map.target is not None else [])
        found = [self.map.range_of(self.shard_id, v) for v in versions]
        return sorted({r for r in found if r is not None})

    def held(self) -> list[tuple[int, int]]:
        """The buckets this shard holds rows of: its ranges to load, and until it settles the previous one."""
        found = self.load_ranges()
        if self.previous is not None and (old := self.previous.range_of(self.shard_id, self.previous.version)):
            found.append(old)
        return found

    @property
    def current(self) -> tuple[int, int]:
        if self.map is None:
            return self.fixed
        return self.map.range_of(self.shard_id, self.map.version) or EMPTY

    def update(self, shard_map: ShardMap) -> None:
        """A newer map (a reshard began, froze or switched): keep the previous version answerable."""
        if self.map is not None and shard_map.version > self.map.version:
            self.previous = self.map
        self.map = shard_map
        if self._involved(shard_map):
            self.exact = False

    def forwards(self) -> list[Transfer]:
        """The moves this shard gives buckets away in (its flusher copies their rows to the new owners' logs)."""
        return [t for t in self.map.moving if t.src == self.shard_id] if self.map is not None else []

    def owned(self, version: int | None) -> tuple[int, int] | None:
        """The buckets to answer for at ``version`` (None: everything held). Raises ``StaleShardMap`` for a
        version this shard cannot answer (the caller reloads the map and asks again)."""
        if self.map is None or version is None:
            return None
        if self.exact and version == self.map.version:
            return None
        known, found = self._range_at(version)
        if not known and self.maps is not None:
            latest = self.maps.load()
            if latest is not None and latest.version >= self.map.version:
                self.update(latest)
                known, found = self._range_at(version)
        if not known:
            raise StaleShardMap(f"shard {self.shard_id} serves map version {self.map.version}, not {version}")
        return found or EMPTY

    def owned_now(self) -> tuple[int, int] | None:
        """The buckets to answer for under the map this shard knows (``owned`` of its version)."""
        return self.owned(self.map.version if self.map is not None else None)

    def _range_at(self, version: int) -> tuple[bool, tuple[int, int] | None]:
        """(whether this shard knows ``version``, its range then)."""
        for shard_map in (self.map, self.previous):
            if shard_map is None:
                continue
            if version == shard_map.version or (version == shard_map.version + 1 and shard_map.target is not None):
                return True, shard_map.range_of(self.shard_id, version)
        return False, None

    def settled(self) -> None:
        """What this shard gave away is dropped: it answers the current version only, and whole again."""
        self.previous = None
        self.exact = self.map is None or not self._involved(self.map)
