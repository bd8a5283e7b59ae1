"""Which shard owns a pattern: its home bucket (from the MinHash band-0 key) and the shard map's ranges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def split_by_owner(table, ranges: Sequence[BucketRange]) -> list:
    """Rows of a pattern table (with its ``bucket`` column) per owning shard, in shard-id order."""
    import pyarrow as pa

    owner = owners(table.column("bucket").to_numpy().astype(np.int64), ranges)
    return [table.filter(pa.array(owner == r.shard_id)) for r in ranges]
