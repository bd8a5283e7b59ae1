"""The shard index's compact storage: names as digests, narrow arrays that widen, escaped posting details."""

import hashlib

import numpy as np
import pytest

from actors.columns import GrowableArray, NarrowArray
from actors.kb_index import EVENT_SIZE_ESCAPE
from actors.pattern_names import PatternNames
from actors.shard import Shard
from cluster.ops.bench.workloads import standard_patterns
from schema.learning import make_pattern
from schema.rules.query import QueryOptions


def hex_name(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def test_names_are_numbered_in_order_of_first_appearance_and_found_again():
    names = PatternNames()
    first = [hex_name(i) for i in range(5)]
    assert names.add(first + [first[1]]).tolist() == [0, 1, 2, 3, 4, 1]
    assert names.add([hex_name(9), first[3], hex_name(9)]).tolist() == [5, 3, 5]
    assert len(names) == 6
    assert names.find([first[4], hex_name(7), hex_name(9)]).tolist() == [4, -1, 5]
    assert names.get(first[2]) == 2 and names.get(hex_name(8)) is None
    assert names.names(np.array([5, 0, 3])) == [hex_name(9), first[0], first[3]]


def test_the_table_grows_and_keeps_every_name():
    names = PatternNames()
    every = [hex_name(i) for i in range(20_000)]
    for lo in range(0, len(every), 3_000):
        names.add(every[lo:lo + 3_000])
    assert names.find(every).tolist() == list(range(len(every)))
    assert names.names(np.arange(len(every))) == every
    assert names.find([hex_name(i) for i in range(20_000, 20_100)]).tolist() == [-1] * 100


@pytest.mark.parametrize("bad", ["p0", "A" * 40, "g" * 40, "0" * 39, "0" * 41, "é" * 40, "00 " * 13 + "0"])
def test_a_name_that_is_no_sha1_digest_is_refused_and_never_found(bad):
    names = PatternNames()
    with pytest.raises(ValueError, match="40 lowercase hex digits"):
        names.add([hex_name(1), bad])
    assert len(names) == 0
    names.add([hex_name(1)])
    assert names.find([bad, hex_name(1)]).tolist() == [-1, 0]
    assert names.get(bad) is None


def test_name_sort_keys_order_like_the_hex_text():
    names = PatternNames()
    every = [hex_name(i) for i in range(500)] + ["0" * 39 + "1", "0" * 40, "f" * 40, "0" * 38 + "10"]
    ids = names.add(every)
    order = np.lexsort(names.sort_keys(ids))
    assert [every[i] for i in order.tolist()] == sorted(every)


def test_a_narrow_array_widens_when_a_value_does_not_fit():
    array = NarrowArray((np.uint8, np.uint16, np.int32), 4)
    array.extend(np.array([1, 255]))
    assert array.dtype == np.uint8
    array.append(256)
    array.extend(np.array([70_000, 3]))
    assert array.dtype == np.int32 and array.view().tolist() == [1, 255, 256, 70_000, 3]
    with pytest.raises(OverflowError):
        array.append(2 ** 40)


def test_a_growable_array_commits_what_a_kernel_wrote_and_trims_its_capacity():
    array = GrowableArray(np.int64, 2)
    buffer = array.reserve(10_000)
    buffer[:3] = [7, 8, 9]
    array.commit(3)
    assert array.view().tolist() == [7, 8, 9] and array.nbytes >= 10_000 * 8
    array.trim()
    assert array.nbytes == 3 * 8 and array.view().tolist() == [7, 8, 9]
    with pytest.raises(ValueError):
        array.commit(4)


def _predicted(shard: Shard, stm, threshold: float):
    top = shard.query("kb", stm, QueryOptions(recall_threshold=threshold, max_predictions=50))
    return list(zip(top.names, top.pre_potentials, top.similarities)), top.total


def test_escaped_event_sizes_and_repeated_tokens_score_exactly_as_the_general_kernel():
    """A posting detail holds event sizes up to 126 and one "repeated" bit: a pattern whose only state token
    sits in an event of 127 symbols or more, or occurs hundreds of times, is scored by reading it, and both
    routes give the same ranking."""
    big_event = sorted(f"w{i:03d}" for i in range(300))
    patterns = [[big_event, ["tail"]], [["w001"], ["x"]], [["w002"], ["w002"], ["y"]],
                [["w003"]] * 300 + [["z"]], [[f"w{i:03d}" for i in range(126)], ["v"]]]
    shard = Shard()
    shard.add("kb", [hex_name(i) for i in range(len(patterns))], patterns)
    index = shard.kb("kb")
    details = np.concatenate([p.view()["detail"] for p in index.postings.values()])
    assert (details & EVENT_SIZE_ESCAPE).max() == EVENT_SIZE_ESCAPE
    for stm in ([["w001"], ["q"]], [["w002"], ["q"]], [["w002"], ["w002"]], [["w003"], ["z"]], [["w100"], ["tail"]],
                [["w050"], ["v"]]):
        state_ids = shard.vocabulary.lookup_state([s for e in stm for s in e])
        ids, sims, pre = shard._posting_fields(index, state_ids, 0.001)
        expected = shard._token_fields(index, index.containing_any(state_ids[state_ids >= 0]), state_ids, 0.001)
        order = np.argsort(ids)
        assert (ids[order].tolist(), sims[order].tolist(), pre[order].tolist()) == tuple(
            e.tolist() for e in expected)


def test_a_vocabulary_past_65536_tokens_widens_the_token_ids_without_changing_answers():
    narrow, wide = Shard(), Shard()
    wide.add("filler", [hex_name(-1)], [[[f"f{i}" for i in range(70_000)]]])
    patterns = standard_patterns(300, seed=3)
    names = [hex_name(i) for i in range(len(patterns))]
    for shard in (narrow, wide):
        shard.add("kb", names, patterns)
    assert narrow.kb("kb").tokens.dtype == np.uint16 and wide.kb("kb").tokens.dtype == np.int32
    for stm in (patterns[0][:2], patterns[7][:3], [["word_1", "word_2"]]):
        assert _predicted(narrow, stm, 0.1) == _predicted(wide, stm, 0.1)


def test_the_index_holds_under_150_bytes_per_pattern_of_the_standard_workload():
    """Every byte counted (names, lookup table, postings, capacity), after the trim a load ends with."""
    learned = [p for p in map(make_pattern, standard_patterns(30_000)) if p is not None]
    shard = Shard()
    for lo in range(0, len(learned), 5_000):
        chunk = learned[lo:lo + 5_000]
        shard.add("kb", [p.name for p in chunk], [p.events for p in chunk])
    shard.trim()
    per_pattern = shard.stats().index_bytes / shard.count("kb")
    assert per_pattern <= 150, per_pattern
    assert shard.stats().index_bytes >= shard.count("kb") * 100  # names (20) + postings (5 per token) at least


def test_freed_heap_pages_go_back_to_the_os():
    import platform

    from actors.process_memory import trim_heap

    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # 128 MB of heap allocations (under mmap's threshold)
    del blocks
    if platform.libc_ver()[0] != "glibc":
        assert trim_heap() is False
    else:
        assert trim_heap() is True  # glibc released pages


def test_the_pages_arrow_keeps_after_freeing_go_back_to_the_os():
    import pyarrow as pa
    import pyarrow.compute as pc

    from actors.process_memory import release_arrow_pool, resident_bytes

    base = pa.array(np.arange(4096, dtype=np.int64))
    arrays = [pc.add(base, i) for i in range(6000)]  # 196 MB in Arrow's pool, 32 KB buffers
    del arrays
    kept = resident_bytes()
    release_arrow_pool()
    assert kept - resident_bytes() >= 100 * 2**20


def _index_arrays(shard: Shard, kb_id: str) -> dict[str, list]:
    index = shard.kb(kb_id)
    return {"names": index.names_of(index.all_ids()), "tokens": index.tokens.view().tolist(),
            "offsets": index.offsets.view().tolist(), "event_sizes": index.event_sizes.view().tolist(),
            "event_offsets": index.event_offsets.view().tolist(), "buckets": index.buckets.view().tolist(),
            "distinct": index.distinct_counts.view().tolist(), "vocabulary": list(shard.vocabulary.symbols),
            "postings": {t: p.view().tolist() for t, p in sorted(index.postings.items())},
            "first_token": {t: p.view().tolist() for t, p in sorted(index.first_token.items())}}


def test_an_arrow_column_is_indexed_exactly_as_python_lists_even_sliced():
    import pyarrow as pa

    from actors.kb_index import EVENTS_TYPE

    patterns = standard_patterns(400, seed=9) + [[["x", "x", "y"], ["y"]], [["z"]]]
    names = [hex_name(i) for i in range(len(patterns))]
    names[5] = names[2]  # a name twice in one batch: the first occurrence is kept
    column = pa.array([[["pad"]]] * 7 + patterns, type=EVENTS_TYPE).slice(7)  # offsets that do not start at 0
    buckets = np.arange(len(patterns)) * 7 % 65536
    lists, arrow = Shard(), Shard()
    assert lists.add("kb", names, patterns, buckets.tolist()) == arrow.add("kb", names, column, buckets)
    assert _index_arrays(lists, "kb") == _index_arrays(arrow, "kb")
    again = Shard()
    again.add("kb", names[:100], patterns[:100])
    again.add("kb", names, pa.chunked_array([column]), buckets)  # a second batch, partly known already
    assert _index_arrays(again, "kb")["names"] == list(dict.fromkeys(names[:100] + names))
    assert sorted(again.export("kb")) == sorted(lists.export("kb"))
    for stm in (patterns[0][:2], patterns[11][:3], [["x", "y"]]):
        assert _predicted(lists, stm, 0.1) == _predicted(arrow, stm, 0.1) == _predicted(again, stm, 0.1)


def test_a_tuned_collector_leaves_start_up_objects_out_and_collects_young_objects_less_often():
    import gc

    from actors.process_memory import YOUNG_COLLECTION_THRESHOLD, tune_collector

    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
