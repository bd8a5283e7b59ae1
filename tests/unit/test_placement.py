"""The shard map's planning: which buckets move in a reshard, to whom, and how a map is saved."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from schema.minhash import NUM_BUCKETS
from schema.placement import (
    BucketRange,
    ShardMap,
    Transfer,
    even_ranges,
    least_loaded_nodes,
    owners,
    rebalanced,
    split_by_owner,
    transfers,
)


def owner_of_every_bucket(ranges) -> np.ndarray:
    return owners(np.arange(NUM_BUCKETS), ranges)


def covers_everything_once(ranges) -> bool:
    spans = sorted((r.lo, r.hi) for r in ranges)
    return spans[0][0] == 0 and spans[-1][1] == NUM_BUCKETS - 1 and all(
        a[1] + 1 == b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 4), (4, 2), (1, 5), (5, 1), (3, 3)])
def test_transfers_are_exactly_the_buckets_whose_owner_changes(before, after):
    old = even_ranges(before)
    new = rebalanced(old, after)
    assert covers_everything_once(new) and len(new) == after
    moved = np.full(NUM_BUCKETS, -1)
    for t in transfers(old, new):
        assert t.src != t.dst and t.lo <= t.hi
        assert (moved[t.lo:t.hi + 1] == -1).all()  # no bucket moves twice
        moved[t.lo:t.hi + 1] = t.dst
    changed = owner_of_every_bucket(old) != owner_of_every_bucket(new)
    assert ((moved != -1) == changed).all()
    assert (moved[changed] == owner_of_every_bucket(new)[changed]).all()


def test_a_split_keeps_each_range_with_the_shard_that_holds_most_of_it():
    old = even_ranges(2)  # 0: 0..32767, 1: 32768..65535
    new = rebalanced(old, 3)
    assert new == (BucketRange(0, 0, 21844), BucketRange(2, 21845, 43689), BucketRange(1, 43690, 65535))
    assert transfers(old, new) == [Transfer(0, 2, 21845, 32767), Transfer(1, 2, 32768, 43689)]
    moved = sum(t.hi - t.lo + 1 for t in transfers(old, new))
    assert moved == 21845  # a third of the buckets: the least any 2 -> 3 split can move


def test_a_merge_keeps_the_shards_holding_most_and_always_shard_zero():
    three = rebalanced(even_ranges(2), 3)
    assert {r.shard_id for r in rebalanced(three, 2)} == {0, 1}
    for count in range(1, 6):  # shard 0 holds the nodes' vectors: no plan ever retires it
        for before in range(1, 6):
            assert rebalanced(even_ranges(before), count)[0].shard_id == 0
    assert rebalanced(three, 1) == (BucketRange(0, 0, NUM_BUCKETS - 1),)


def test_rebalancing_to_the_same_count_moves_nothing():
    for count in (1, 2, 7):
        ranges = even_ranges(count)
        assert rebalanced(ranges, count) == tuple(ranges)
        assert transfers(ranges, rebalanced(ranges, count)) == []


def test_new_shards_take_the_smallest_unused_ids():
    new = rebalanced(even_ranges(2), 4)
    assert sorted(r.shard_id for r in new) == [0, 1, 2, 3]


def test_split_by_owner_partitions_the_rows():
    buckets = [0, 40000, 100, 65535, 32767, 32768]
    table = pa.table({"name": [f"p{i}" for i in range(len(buckets))], "bucket": pa.array(buckets, pa.uint16())})
    parts = split_by_owner(table, even_ranges(2))
    assert sorted(parts) == [0, 1]
    assert parts[0].column("name").to_pylist() == ["p0", "p2", "p4"]
    assert parts[1].column("name").to_pylist() == ["p1", "p3", "p5"]
    assert list(split_by_owner(table.slice(0, 1), even_ranges(2))) == [0]  # a shard with no row is left out


def test_the_map_knows_both_versions_during_a_reshard():
    old = ShardMap.even(2, version=7)
    moving = ShardMap(7, old.ranges, rebalanced(old.ranges, 3))
    assert moving.shard_ids() == [0, 1, 2]
    assert moving.range_of(2, 7) is None and moving.range_of(2, 8) == (21845, 43689)
    assert moving.range_of(0, 7) == (0, 32767) and moving.range_of(0, 8) == (0, 21844)
    with pytest.raises(ValueError, match="does not know version 9"):
        moving.range_of(0, 9)
    with pytest.raises(ValueError, match="does not know version 8"):
        old.range_of(0, 8)  # no target: the next version is unknown


def test_the_map_round_trips_through_json():
    for shard_map in (ShardMap.even(3), ShardMap(4, tuple(even_ranges(2)), rebalanced(even_ranges(2), 5), 123)):
        saved = shard_map.to_json()
        assert ShardMap.from_json(saved) == shard_map
        assert saved["moving"] == [[t.lo, t.hi] for t in shard_map.moving]
    assert ShardMap.even(2).to_json() == {"version": 1, "ranges": [[0, 0, 32767], [1, 32768, 65535]],
                                          "target": None, "moving": [], "frozen_until_ms": 0}


def test_every_pair_of_counts_up_to_six_plans_a_full_cover():
    for before, after in itertools.product(range(1, 7), repeat=2):
        new = rebalanced(even_ranges(before), after)
        assert covers_everything_once(new)
        assert len({r.shard_id for r in new}) == after


def test_new_shards_go_round_robin_over_empty_nodes():
    assert least_loaded_nodes(5, ["a", "b", "c"], {}) == ["a", "b", "c", "a", "b"]


def test_a_node_that_joined_takes_the_new_shards_until_it_holds_as_many():
    assert least_loaded_nodes(2, ["head", "joined"], {"head": 2}) == ["joined", "joined"]
    assert least_loaded_nodes(3, ["a", "b", "c"], {"a": 2, "b": 1}) == ["c", "b", "c"]


def test_shards_on_nodes_gone_are_not_counted_and_no_node_places_nothing():
    assert least_loaded_nodes(2, ["b"], {"gone": 3, "b": 1}) == ["b", "b"]
    assert least_loaded_nodes(3, [], {}) == []
