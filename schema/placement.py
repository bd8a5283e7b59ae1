"""Which shard owns a pattern: its home bucket (from the MinHash band-0 key) and the shard map's ranges.

The shard map is versioned. While a reshard runs it also holds its ``target`` (the next ranges) and the
``transfers`` between them; the version changes only at the cut-over, atomically, so every reader and writer
works with one version at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schema.minhash import NUM_BUCKETS, home_buckets, minhash_signatures


@dataclass(frozen=True)
class BucketRange:
    shard_id: int
    lo: int
    hi: int


def even_ranges(shards: int, buckets: int = NUM_BUCKETS) -> list[BucketRange]:
    """Split the bucket space into ``shards`` contiguous ranges of (nearly) equal size."""
    cuts = np.linspace(0, buckets, shards + 1).astype(int)
    return [BucketRange(i, int(cuts[i]), int(cuts[i + 1]) - 1) for i in range(shards)]


def pattern_buckets(events_list: Sequence[Sequence[Sequence[str]]]) -> np.ndarray:
    token_sets = [sorted({s for e in events for s in e}) for events in events_list]
    return home_buckets(minhash_signatures(token_sets))


def owners(buckets: np.ndarray, ranges: Sequence[BucketRange]) -> np.ndarray:
    """Shard id owning each bucket."""
    his = np.array([r.hi for r in ranges])
    ids = np.array([r.shard_id for r in ranges])
    return ids[np.searchsorted(his, buckets)]


def split_by_owner(table, ranges: Sequence[BucketRange]) -> dict[int, Any]:
    """Rows of a pattern table (with its ``bucket`` column) per owning shard id (shards with no row left out)."""
    import pyarrow as pa

    owner = owners(table.column("bucket").to_numpy().astype(np.int64), ranges)
    return {r.shard_id: table.filter(pa.array(owner == r.shard_id)) for r in ranges if (owner == r.shard_id).any()}


@dataclass(frozen=True)
class Transfer:
    """Buckets ``lo..hi`` move from shard ``src`` to shard ``dst``."""

    src: int
    dst: int
    lo: int
    hi: int

    def covers(self, buckets: np.ndarray) -> np.ndarray:
        return (buckets >= self.lo) & (buckets <= self.hi)


def transfers(old: Sequence[BucketRange], new: Sequence[BucketRange]) -> list[Transfer]:
    """The bucket ranges whose owner differs between two shard maps (both cover the whole bucket space)."""
    cuts = sorted({r.lo for r in old} | {r.lo for r in new})
    ends = [*cuts[1:], max(r.hi for r in new) + 1]
    found: list[Transfer] = []
    for lo, end in zip(cuts, ends):
        src = int(owners(np.array([lo]), old)[0])
        dst = int(owners(np.array([lo]), new)[0])
        if src == dst:
            continue
        if found and found[-1].src == src and found[-1].dst == dst and found[-1].hi == lo - 1:
            found[-1] = Transfer(src, dst, found[-1].lo, end - 1)
        else:
            found.append(Transfer(src, dst, lo, end - 1))
    return found


def rebalanced(current: Sequence[BucketRange], shards: int) -> tuple[BucketRange, ...]:
    """``shards`` even ranges, each kept by the current shard that already holds most of it, so that as few
    buckets as possible move; ranges no current shard keeps get the smallest unused shard ids. The owner of
    bucket 0 always keeps the first range, so it never goes away (shard 0: it also holds the nodes' vectors)."""
    segments = even_ranges(shards)
    pairs = sorted(((min(r.hi, seg.hi) - max(r.lo, seg.lo) + 1, -r.shard_id, i, r.shard_id)
                    for i, seg in enumerate(segments) for r in current if r.lo <= seg.hi and seg.lo <= r.hi),
                   reverse=True)
    owner: dict[int, int] = {0: int(owners(np.array([0]), current)[0])}
    for _overlap, _, segment, shard_id in pairs:
        if segment not in owner and shard_id not in owner.values():
            owner[segment] = shard_id
    spare = (i for i in range(len(current) + shards) if i not in owner.values())
    return tuple(BucketRange(owner[i] if i in owner else next(spare), seg.lo, seg.hi) for i, seg in enumerate(segments))


@dataclass(frozen=True)
class ShardMap:
    """One version of the bucket ranges; during a reshard also the ``target`` ranges of the next version, and
    until when (``frozen_until_ms``, Redis time) writes into the moving buckets wait for the cut-over."""

    version: int
    ranges: tuple[BucketRange, ...]
    target: tuple[BucketRange, ...] | None = None
    frozen_until_ms: int = 0

    @classmethod
    def even(cls, shards: int, version: int = 1) -> ShardMap:
        return cls(version, tuple(even_ranges(shards)))

    @property
    def moving(self) -> list[Transfer]:
        return transfers(self.ranges, self.target) if self.target is not None else []

    def shard_ids(self) -> list[int]:
        """Every shard that holds or receives a range (the current ranges and the target's)."""
        return sorted({r.shard_id for r in (*self.ranges, *(self.target or ()))})

    def range_of(self, shard_id: int, version: int) -> tuple[int, int] | None:
        """The buckets ``shard_id`` owns at ``version`` (this one, or the target's at ``version + 1``)."""
        ranges = self.ranges if version == self.version else self.target if version == self.version + 1 else None
        if ranges is None:
            raise ValueError(f"map version {self.version} does not know version {version}")
        return next(((r.lo, r.hi) for r in ranges if r.shard_id == shard_id), None)

    def to_json(self) -> dict[str, Any]:
        def plain(ranges: Sequence[BucketRange]) -> list[list[int]]:
            return [[r.shard_id, r.lo, r.hi] for r in ranges]

        return {"version": self.version, "ranges": plain(self.ranges),
                "target": plain(self.target) if self.target is not None else None,
                "moving": [[t.lo, t.hi] for t in self.moving], "frozen_until_ms": self.frozen_until_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardMap:
        def ranges(rows: Sequence[Sequence[int]]) -> tuple[BucketRange, ...]:
            return tuple(BucketRange(int(s), int(lo), int(hi)) for s, lo, hi in rows)

        target = data.get("target")
        return cls(int(data["version"]), ranges(data["ranges"]), ranges(target) if target is not None else None,
                   int(data.get("frozen_until_ms") or 0))


def least_loaded_nodes(count: int, nodes: Sequence[str], occupied: Mapping[str, int]) -> list[str]:
    """The nodes ``count`` new shards go to: one after the other to the node holding the fewest shards
    (``occupied`` and those placed before counted), ties to the first of ``nodes``. With nothing occupied this
    is round robin; a node that joined takes the new shards until it holds as many as the others."""
    held = {node: occupied.get(node, 0) for node in nodes}
    chosen = []
    for _ in range(count if nodes else 0):
        node = min(nodes, key=held.__getitem__)
        held[node] += 1
        chosen.append(node)
    return chosen
