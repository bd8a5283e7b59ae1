"""The shards a service runs, from the saved shard map: what ``up``, ``serve deploy`` and the replicas share.

The map in Redis is the truth (``cluster.stores.shard_map``). A service that starts with another shard count
than the saved map's first starts the saved shards, then reshards to the asked count before it serves
(``serve_app.resharder``), so no start ever hides data.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable

from cluster.stores.shard_map import ShardMapStore
from schema.placement import ShardMap
from schema.settings import Settings
from serve_app.resharder import Progress, Resharder, ReshardShards

_SHARD_DIR = re.compile(r"^shard-(\d+)$")


def saved_map(maps: ShardMapStore, settings: Settings) -> ShardMap:
    """The saved map; without one, the layout the data directory already holds (embedded data written before
    maps were saved: one ``shard-N`` directory per shard, even ranges), else ``settings.shards`` even ranges."""
    found = maps.load()
    if found is not None:
        return found
    held = _embedded_shard_dirs(settings)
    return maps.initialize(ShardMap.even(max(held) + 1 if held else settings.shards))


def _embedded_shard_dirs(settings: Settings) -> list[int]:
    if settings.store or not os.path.isdir(settings.data_dir):
        return []
    return [int(m.group(1)) for name in os.listdir(settings.data_dir) if (m := _SHARD_DIR.match(name))]


def shard_ranges(shard_map: ShardMap) -> list[tuple[int, int, int]]:
    """(shard id, lo, hi) of every shard to run: the current ranges, and the target's new shards."""
    ranges = {r.shard_id: (r.shard_id, r.lo, r.hi) for r in (*(shard_map.target or ()), *shard_map.ranges)}
    return [ranges[i] for i in sorted(ranges)]


def retire_embedded(settings: Settings) -> Callable[[int], None]:
    """Remove the data directory of a shard a merge left without a range (embedded engines only)."""
    def retire(shard_id: int) -> None:
        if not settings.store:
            shutil.rmtree(settings.shard_dir(shard_id), ignore_errors=True)
    return retire


def resharder(settings: Settings, shards: ReshardShards, maps: ShardMapStore, progress: Progress | None = None
              ) -> Resharder:
    """The service's ``Resharder``, tuned by its settings."""
    return Resharder(shards, maps, progress, chunk_buckets=settings.reshard_chunk_buckets,
                     freeze_ms=settings.reshard_freeze_ms, retire=retire_embedded(settings))
