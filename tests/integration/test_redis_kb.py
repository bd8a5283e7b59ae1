"""RedisKB against a real redis-server: KATO's key layout, batch == sequential, emotives, metadata, affinity."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.stores.pattern_layout import LAYOUTS
from cluster.stores.pattern_log import LogAppend
from cluster.stores.redis_kb import RedisKB, glob_escape
from schema.learning import LearnedPattern, accumulate_metadata, make_pattern
from schema.naming import pattern_hash
from schema.rules.metrics import PatternIntrinsics
from tests.integration.redis_keys import kb_key

pytestmark = pytest.mark.integration
REDIS_KINDS = ("single", "cluster")  # each Redis test runs on a single server and on a Redis Cluster
_ids = itertools.count()


def dump(client, kb_id: str) -> dict[str, object]:
    """Every key of a KB with its value, the ``{kb_id}:`` prefix (and hash tag) stripped."""
    out: dict[str, object] = {}
    prefix = kb_key(client, kb_id, "")
    for key in client.scan_iter(match=glob_escape(prefix) + "*"):
        kind = client.type(key)
        value = {"string": client.get, "hash": client.hgetall, "set": client.smembers}[kind](key)
        out[key[len(prefix):]] = value
    return out


def learned(events, emotives=(), metadata=()) -> LearnedPattern:
    p = make_pattern(events, emotives, metadata)
    assert p is not None
    return p


def test_new_pattern_keys(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client)
    p = learned([["a", "b"], ["a"]])
    assert rk.learn(kb, p, 5) is True
    d = dump(redis_client, kb)
    h = p.name
    assert d == {
        f"frequency:{h}": "1", f"emotives:{h}": "[]", f"metadata:{h}": "{}",
        "symbols:freq": {"a": "2", "b": "1"}, "symbols:pmf": {"a": "1", "b": "1"},
        "global:total_symbols_in_patterns_frequencies": "3",
        "global:total_pattern_frequencies": "1", "global:total_unique_patterns": "1",
    }
    assert rk.learn(kb, p, 5) is False
    d = dump(redis_client, kb)
    assert d[f"frequency:{h}"] == "2"
    assert d["symbols:freq"] == {"a": "4", "b": "2"} and d["symbols:pmf"] == {"a": "1", "b": "1"}
    assert d["global:total_symbols_in_patterns_frequencies"] == "6"
    assert d["global:total_pattern_frequencies"] == d["global:total_unique_patterns"] == "1"


def test_symbol_to_patterns_only_behind_switch(redis_client, make_kb_id):
    kb_off, kb_on = make_kb_id("off"), make_kb_id("on")
    p = learned([["a", "b"]])
    RedisKB(redis_client).learn(kb_off, p, 5)
    RedisKB(redis_client, symbol_to_patterns=True).learn(kb_on, p, 5)
    assert not any(k.startswith("symbol_to_patterns:") for k in dump(redis_client, kb_off))
    assert dump(redis_client, kb_on)["symbol_to_patterns:a"] == {p.name}


def test_emotives_trimmed_to_persistence(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client)
    seven = [{"e": float(i)} for i in range(7)]
    p = learned([["a"], ["b"]], emotives=seven)
    rk.learn(kb, p, 5)
    assert json.loads(redis_client.get(kb_key(redis_client, kb, f"emotives:{p.name}"))) == seven[2:]

    kb2 = make_kb_id("relearn")
    first = learned([["a"], ["b"]], emotives=[{"x": 1.0}, {"x": 2.0}, {"x": 3.0}])
    second = learned([["a"], ["b"]], emotives=[{"x": 4.0}, {"x": 5.0}, {"x": 6.0}])
    rk.learn(kb2, first, 5)
    rk.learn(kb2, second, 5)
    stored = redis_client.get(kb_key(redis_client, kb2, f"emotives:{first.name}"))
    assert json.loads(stored) == [{"x": v} for v in (2.0, 3.0, 4.0, 5.0, 6.0)]
    assert rk.pattern_info(kb2, first.name)["frequency"] == 2


def test_metadata_union_as_sorted_strings(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client)
    p1 = learned([["a", "b"]], metadata=[{"n": 123, "flag": True}, {"n": 45.67}])
    p2 = learned([["a", "b"]], metadata=[{"n": "0", "tag": "x"}])
    rk.learn(kb, p1, 5)
    stored = redis_client.get(kb_key(redis_client, kb, f"metadata:{p1.name}"))
    assert json.loads(stored) == {"n": ["123", "45.67"], "flag": ["True"]}
    rk.learn(kb, p2, 5)
    info = rk.pattern_info(kb, p1.name)
    assert info["metadata"] == {"n": ["0", "123", "45.67"], "flag": ["True"], "tag": ["x"]}
    assert rk.pattern_info(kb, "f" * 40) is None


def test_affinity_running_sum(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client)
    rk.learn(kb, learned([["A"], ["B"]], emotives=[{"joy": 0.8}, {"joy": 0.4}]), 5)
    assert rk.symbol_affinity(kb, "A") == pytest.approx({"joy": 0.6})
    assert rk.symbol_affinity(kb, "B") == pytest.approx({"joy": 0.6})
    rk.learn(kb, learned([["B"], ["C"]], emotives=[{"joy": 2.0}]), 5)
    everything = rk.affinities(kb)
    assert sorted(everything) == ["A", "B", "C"]
    for symbol, joy in (("A", 0.6), ("B", 2.6), ("C", 2.0)):
        assert everything[symbol] == pytest.approx({"joy": joy})
    rk.learn(kb, learned([["D"], ["E"]]), 5)  # no emotives: no affinity key
    assert redis_client.exists(kb_key(redis_client, kb, "affinity:D")) == 0
    assert rk.symbol_affinity(kb, "unknown") == {}
    # varying keys accumulate per key
    rk.learn(kb, learned([["A"], ["Z"]], emotives=[{"joy": 1.0}, {"fear": 3.0}]), 5)
    assert rk.symbol_affinity(kb, "A") == pytest.approx({"joy": 1.6, "fear": 3.0})


def test_symbol_stats_and_corpus_stats(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client)
    p1 = learned([["a", "b"], ["c"]], emotives=[{"joy": 1.0}])
    p2 = learned([["a"], ["d"]])
    rk.learn_batch(kb, [p1, p2, p1], 5)
    assert rk.symbol_stats(kb) == {
        "a": {"name": "a", "frequency": 3, "pattern_member_frequency": 2},
        "b": {"name": "b", "frequency": 2, "pattern_member_frequency": 1},
        "c": {"name": "c", "frequency": 2, "pattern_member_frequency": 1},
        "d": {"name": "d", "frequency": 1, "pattern_member_frequency": 1},
    }
    intr = PatternIntrinsics(1.5, 0.75, 0.25, {"a": 0.5, "d": 0.5})
    rk.write_intrinsics(kb, {p2.name: intr})
    stats = rk.corpus_stats(kb, [p1.name, p2.name, "0" * 40], ["a", "d", "zz"], weight_symbols=["a", "zz"])
    assert stats.total_symbols == 4
    assert stats.total_unique_patterns == 2 and stats.total_pattern_frequencies == 2
    assert stats.frequencies == {p1.name: 2, p2.name: 1}
    assert stats.emotives == {p1.name: [{"joy": 1.0}, {"joy": 1.0}], p2.name: []}
    assert stats.pmf == {"a": 2, "d": 1}
    assert stats.symbol_freq == {"a": 3}
    assert stats.affinity == {"a": {"joy": 2.0}}
    assert stats.intrinsics == {p2.name: intr}
    empty = rk.corpus_stats(make_kb_id("none"), [], [])
    assert (empty.total_symbols, empty.total_unique_patterns, empty.frequencies) == (0, 0, {})


def test_corpus_stats_is_one_round_trip(redis_client, make_kb_id):
    kb = make_kb_id()
    rk = RedisKB(redis_client)
    rk.learn(kb, learned([["a", "b"]]), 5)
    before = int(redis_client.info("stats")["total_connections_received"])
    calls = []
    original = redis_client.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        calls.append(pipe)
        return pipe

    redis_client.pipeline = counting_pipeline
    try:
        rk.corpus_stats(kb, ["x"] * 3, ["a"], ["a", "b"])
    finally:
        redis_client.pipeline = original
    assert len(calls) == 1
    assert int(redis_client.info("stats")["total_connections_received"]) - before <= 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_single_new_learn_is_one_round_trip_and_a_relearn_reads_first(redis_client, make_kb_id, layout):
    """A single learn is planned as new without reading: one script call, which also registers the log it
    appends to. A re-learn finds that plan refused, reads, and counts as one more learn, not a new pattern."""
    kb = make_kb_id()
    rk = RedisKB(redis_client, layout=layout)
    rk.learn(kb, learned([["warm"], ["up"]]), 5)  # the script is loaded
    registry, stream = kb_key(redis_client, kb, "registry"), kb_key(redis_client, kb, "stream")
    def rows_for(names: set[str]) -> list[LogAppend]:
        return [LogAppend(stream, stream + ":rows", b"rows", len(names))] if names else []

    calls: list[str] = []
    original, original_pipeline = redis_client.execute_command, redis_client.pipeline

    def counting(*args, **kwargs):
        calls.append(str(args[0]))
        return original(*args, **kwargs)

    def counting_pipeline(*args, **kwargs):
        calls.append("pipeline")
        return original_pipeline(*args, **kwargs)

    redis_client.execute_command, redis_client.pipeline = counting, counting_pipeline
    try:
        assert rk.learn_batch(kb, [learned([["a"], ["b"]])], 5, rows_for, [(registry, kb)]) == [True]
        first = list(calls)
        assert rk.learn_batch(kb, [learned([["a"], ["b"]], emotives=[{"joy": 1.0}])], 5, rows_for,
                              [(registry, kb)]) == [False]
    finally:
        del redis_client.execute_command, redis_client.pipeline
    assert first == ["EVALSHA"]
    assert calls[1:] == ["EVALSHA", "pipeline", "EVALSHA"]  # refused as new, read, committed
    assert redis_client.smembers(registry) == {kb} and redis_client.xlen(stream) == 1
    info = rk.pattern_info(kb, pattern_hash([["a"], ["b"]]))
    assert info["frequency"] == 2 and info["emotives"] == [{"joy": 1.0}]
    assert redis_client.get(kb_key(redis_client, kb, "global:total_unique_patterns")) == "2"


# --------------------------------------------------------------- batch == sequential
_symbols = st.sampled_from(["a", "b", "c", "d", "e*", "f[1]"])
_event = st.lists(_symbols, min_size=1, max_size=3)
_events = st.lists(_event, min_size=1, max_size=3).filter(lambda ev: sum(map(len, ev)) >= 2)
_emotive = st.dictionaries(st.sampled_from(["joy", "fear"]), st.floats(-5, 5, allow_nan=False, width=32),
                           min_size=1, max_size=2)
_meta = st.dictionaries(st.sampled_from(["k", "n"]), st.one_of(st.integers(-3, 3), st.booleans(),
                                                               st.sampled_from(["x", "y"])), min_size=1)


@st.composite
def _learns(draw) -> list[LearnedPattern]:
    shapes = draw(st.lists(_events, min_size=1, max_size=4))
    out = []
    for _ in range(draw(st.integers(1, 12))):
        events = draw(st.sampled_from(shapes))  # repeats of the same pattern are likely
        emotives = draw(st.lists(_emotive, max_size=7))
        metadata = draw(st.lists(_meta, max_size=2))
        out.append(LearnedPattern(name=pattern_hash(events), events=[list(e) for e in events],
                                  emotives=emotives, metadata=accumulate_metadata(metadata)))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(learns=_learns(), persistence=st.integers(1, 6), switch=st.booleans(), chunk=st.integers(1, 5))
def test_batched_statistics_equal_one_by_one(redis_client, learns, persistence, switch, chunk):
    n = next(_ids)
    seq_kb, batch_kb = f"seq{n}_kato", f"batch{n}_kato"
    rk = RedisKB(redis_client, symbol_to_patterns=switch)
    seq_new = [rk.learn(seq_kb, p, persistence) for p in learns]
    batch_new = []
    for i in range(0, len(learns), chunk):
        batch_new += rk.learn_batch(batch_kb, learns[i:i + chunk], persistence)
    assert batch_new == seq_new
    assert dump(redis_client, batch_kb) == dump(redis_client, seq_kb)
    assert sum(seq_new) == len({p.name for p in learns})


@pytest.mark.parametrize("layout", LAYOUTS)
def test_concurrent_learns_lose_no_emotives(redis_url, redis_client, make_kb_id, layout):
    from cluster.stores.redis_client import connect

    kb = make_kb_id()
    events = [["a"], ["b"]]
    threads_n, per_thread = 6, 15

    def worker(t: int) -> None:
        client = connect(redis_url)
        rk = RedisKB(client, layout=layout)
        for i in range(per_thread):
            rk.learn(kb, learned(events, emotives=[{"t": float(t)}], metadata=[{"m": f"{t}-{i}"}]), 100)
        client.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    info = RedisKB(redis_client, layout=layout).pattern_info(kb, pattern_hash(events))
    assert info["frequency"] == threads_n * per_thread
    assert len(info["emotives"]) == threads_n * per_thread
    assert len(info["metadata"]["m"]) == threads_n * per_thread
    assert redis_client.get(kb_key(redis_client, kb, "global:total_unique_patterns")) == "1"


def test_clear_kb_uses_literal_prefix(redis_client, make_kb_id):
    rk = RedisKB(redis_client)
    p = learned([["a", "b"]], emotives=[{"joy": 1.0}])
    tricky = "n*de_kato"  # a glob in the kb_id must not match other KBs
    victim = "node_kato"
    for kb in (tricky, victim):
        rk.learn(kb, p, 5)
    before = dump(redis_client, victim)
    assert rk.clear_kb(tricky) == len(dump(redis_client, victim))
    assert dump(redis_client, tricky) == {}
    assert dump(redis_client, victim) == before


def test_repeated_learns_aggregate_like_separate_ones(redis_client, make_kb_id):
    from schema.rules.memory_kb import MemoryKB

    one_by_one, aggregated = make_kb_id("a"), make_kb_id("b")
    kb = RedisKB(redis_client)
    first = learned([["r", "s"], ["s"]], emotives=[{"joy": 1.0}], metadata=[{"m": 1}])
    plain = LearnedPattern(name=first.name, events=first.events)
    kb.learn_batch(one_by_one, [first, *[plain] * 7, learned([["t"], ["u"]])], 5)
    kb.learn_batch(aggregated, [first, LearnedPattern(first.name, first.events, repeats=7),
                                learned([["t"], ["u"]])], 5)
    assert dump(redis_client, one_by_one) == dump(redis_client, aggregated)
    assert redis_client.get(kb_key(redis_client, aggregated, f"frequency:{first.name}")) == "8"
    memory_a, memory_b = MemoryKB(), MemoryKB()
    for p in (first, *[plain] * 7):
        memory_a.learn(p, 5)
    memory_b.learn(first, 5)
    memory_b.learn(LearnedPattern(first.name, first.events, repeats=7), 5)
    assert memory_a == memory_b
    with pytest.raises(ValueError):
        LearnedPattern(first.name, first.events, emotives=[{"joy": 1.0}], repeats=2)


def test_a_large_batch_of_new_patterns_equals_learning_them_one_by_one(redis_client):
    """800 new patterns: their 4,800 key arguments are set in more than one MSET of the commit script."""
    n = next(_ids)
    seq_kb, batch_kb = f"seq{n}_kato", f"batch{n}_kato"
    learns = [make_pattern([[f"s{i}"], [f"s{i + 1}", "t"]], [{"joy": i / 8}] if i % 3 == 0 else [],
                           [{"k": i}] if i % 5 == 0 else []) for i in range(800)]
    rk = RedisKB(redis_client)
    assert [rk.learn(seq_kb, p, 5) for p in learns] == [True] * 800
    assert rk.learn_batch(batch_kb, learns, 5) == [True] * 800
    assert dump(redis_client, batch_kb) == dump(redis_client, seq_kb)
    assert redis_client.get(kb_key(redis_client, batch_kb, f"metadata:{learns[5].name}")) == '{"k": ["5"]}'
