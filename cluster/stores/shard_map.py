"""The shard map in Redis (the truth about which shard owns which buckets), changed only atomically.

``kato:shard_map:{namespace}`` holds the ``schema.placement.ShardMap`` as JSON. A reshard writes its target
(``begin``), freezes writes into the moving buckets for a moment (``freeze``), and switches to the next version
only while that freeze holds (``switch``), so no learn routed by the old version can land after the final
catch-up. Every learn's commit checks the version it routed by (``cluster.stores.learn_commit``).
"""

from __future__ import annotations

import json
from dataclasses import replace

import redis

from cluster.stores.key_space import hash_tag
from schema.errors import Conflict
from schema.placement import BucketRange, ShardMap

# Replace the map only if it is still the one the caller read (compare by its JSON text).
_SWAP = """
if (redis.call('get', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[2])
return 1
"""
# Switch to ARGV[2] only if the map is still ARGV[1] and its freeze has not run out.
_SWITCH = """
local raw = redis.call('get', KEYS[1])
if raw ~= ARGV[1] then return 0 end
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= cjson.decode(raw).frozen_until_ms then return -1 end
redis.call('set', KEYS[1], ARGV[2])
return 1
"""


def map_key(namespace: str, tag: str = "") -> str:
    return f"{tag}kato:shard_map:{namespace}"


def encode(shard_map: ShardMap) -> str:
    return json.dumps(shard_map.to_json(), separators=(",", ":"))


class FreezeExpired(Conflict):
    """The write freeze ran out before the cut-over: catch up again under a new one."""


class ShardMapStore:
    def __init__(self, client: redis.Redis, namespace: str = "kato") -> None:
        self.client = client
        self.key = map_key(namespace, hash_tag(client))
        self._swap = client.register_script(_SWAP)
        self._switch = client.register_script(_SWITCH)

    def load(self) -> ShardMap | None:
        raw = self.client.get(self.key)
        return None if raw is None else ShardMap.from_json(json.loads(raw))

    def initialize(self, shard_map: ShardMap) -> ShardMap:
        """The saved map, or ``shard_map`` saved now when there is none (a new deployment)."""
        self.client.set(self.key, encode(shard_map), nx=True)
        saved = self.load()
        assert saved is not None
        return saved

    def begin(self, current: ShardMap, target: tuple[BucketRange, ...]) -> ShardMap:
        """Record a reshard from ``current`` to ``target`` (same version: nothing moves yet)."""
        started = replace(current, target=target, frozen_until_ms=0)
        if not self._swap(keys=[self.key], args=[encode(current), encode(started)]):
            raise Conflict("the shard map changed meanwhile (another reshard?)")
        return started

    def rollback(self, current: ShardMap) -> ShardMap:
        back = replace(current, target=None, frozen_until_ms=0)
        if not self._swap(keys=[self.key], args=[encode(current), encode(back)]):
            raise Conflict("the shard map changed meanwhile (another reshard?)")
        return back

    def freeze(self, current: ShardMap, milliseconds: int) -> ShardMap:
        """Hold writes into the moving buckets for ``milliseconds`` (they retry meanwhile)."""
        seconds, micros = self.client.time()  # Redis's clock: the commits compare with it
        frozen = replace(current, frozen_until_ms=int(seconds) * 1000 + int(micros) // 1000 + milliseconds)
        if not self._swap(keys=[self.key], args=[encode(current), encode(frozen)]):
            raise Conflict("the shard map changed meanwhile (another reshard?)")
        return frozen

    def switch(self, frozen: ShardMap) -> ShardMap:
        """The cut-over: the target becomes the next version, atomically, if the freeze still holds."""
        assert frozen.target is not None
        switched = ShardMap(frozen.version + 1, frozen.target)
        done = int(self._switch(keys=[self.key], args=[encode(frozen), encode(switched)]))
        if done == -1:
            raise FreezeExpired("the write freeze ran out before the cut-over")
        if not done:
            raise Conflict("the shard map changed meanwhile (another reshard?)")
        return switched
