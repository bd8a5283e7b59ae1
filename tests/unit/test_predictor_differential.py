"""The sharded predictor returns exactly what the reference engine returns over the whole corpus."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.shard import Shard
from schema.config import RANK_SORT_ALGOS
from schema.learning import make_pattern
from schema.placement import even_ranges, owners, pattern_buckets
from schema.rules.memory_kb import MemoryKB
from schema.rules.query import QueryOptions
from schema.rules.reference import predict
from serve_app.local_shards import LocalShards
from serve_app.predictor import Predictor

SYMBOLS = ["a", "b", "c", "d", "e", "ab", "abc", "abd", "bcd", "x"]
events = st.lists(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3).map(sorted), min_size=1, max_size=5)
corpora = st.lists(events, min_size=1, max_size=25)
options = st.builds(
    QueryOptions,
    recall_threshold=st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0]),
    max_predictions=st.integers(1, 8),
    use_token_matching=st.booleans(),
    fuzzy_token_threshold=st.sampled_from([0.0, 0.0, 0.6, 0.85]),
    rank_sort_algo=st.sampled_from(RANK_SORT_ALGOS),
    affinity_emotive=st.sampled_from([None, "joy"]),
)


def build(corpus: list[list[list[str]]], shard_count: int) -> tuple[MemoryKB, Predictor]:
    kb = MemoryKB()
    learned = []
    for i, pattern in enumerate(corpus):
        p = make_pattern(pattern, emotives=[{"joy": float(i % 3) - 1.0}] if i % 2 else [])
        if p is not None:
            kb.learn(p, 5)
            learned.append(p)
    ranges = even_ranges(shard_count)
    shards = [Shard(r.shard_id, r.lo, r.hi) for r in ranges]
    if learned:
        for p, owner in zip(learned, owners(pattern_buckets([p.events for p in learned]), ranges).tolist()):
            shards[owner].add("kb", [p.name], [p.events])
    return kb, Predictor(LocalShards(shards, parallel=False), lambda _kb, _c, _w, _as_of: kb.stats())


def assert_same(got, expected):
    got_preds, got_futures = got
    exp_preds, exp_futures = expected
    assert [p["name"] for p in got_preds] == [p["name"] for p in exp_preds]
    for g, e in zip(got_preds, exp_preds):
        assert set(g) == set(e)
        for key, value in e.items():
            if isinstance(value, float) and not math.isnan(value):
                assert g[key] == pytest.approx(value, abs=1e-9), key
            else:
                assert g[key] == value, key
    assert len(got_futures) == len(exp_futures)
    for g, e in zip(got_futures, exp_futures):
        assert g["future"] == e["future"] and g["supporting_patterns"] == e["supporting_patterns"]
        assert g["aggregate_potential"] == pytest.approx(e["aggregate_potential"], abs=1e-9)


@pytest.mark.parametrize("shard_count", [1, 2, 4])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, stm=events, opts=options)
def test_predictor_equals_reference(shard_count, corpus, stm, opts):
    kb, predictor = build(corpus, shard_count)
    assert_same(predictor.predict("kb", stm, opts), predict(stm, kb.items(), kb.stats(), opts))


@settings(max_examples=30, deadline=None)
@given(corpus=corpora, opts=options, data=st.data())
def test_replaying_a_learned_prefix_equals_reference(corpus, opts, data):
    kb, predictor = build(corpus, 2)
    source = data.draw(st.sampled_from(corpus))
    stm = source[:max(1, len(source) // 2)]
    assert_same(predictor.predict("kb", stm, opts), predict(stm, kb.items(), kb.stats(), opts))


def test_unknown_kb_and_empty_stm_give_nothing():
    _, predictor = build([[["a"], ["b"]]], 2)
    assert predictor.predict("other", [["a"], ["b"]], QueryOptions()) == ([], [])
    assert predictor.predict("kb", [], QueryOptions()) == ([], [])


def test_shard_adds_are_idempotent_and_counted():
    shard = Shard()
    n1, n2, n3, empty = (f"{i:040x}" for i in range(4))
    assert shard.add("kb", [n1, n2], [[["a"], ["b"]], [["c", "d"]]]) == 2
    assert shard.add("kb", [n1, n1], [[["a"], ["b"]], [["a"], ["b"]]]) == 0
    assert shard.count("kb") == 2 and shard.count("other") == 0
    assert shard.kb("kb").events_of(1) == [["c", "d"]]
    shard.drop_kb("kb")
    assert shard.count("kb") == 0
    assert shard.add("kb", [empty], [[]]) == 1  # a pattern without tokens does not break the index
    assert shard.add("kb", [n3], [[["z"]]]) == 1 and shard.kb("kb").starting_with(shard.vocabulary.ids["z"]).size


def test_merged_tops_are_ordered_by_potential_similarity_then_name_across_shards():
    from actors.shard import LocalTop, merge_tops

    def top(rows: list[tuple[str, float, float]]) -> LocalTop:
        return LocalTop([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], len(rows),
                        candidates=[r[0] for r in rows])  # type: ignore[list-item]  # stands in for the fields

    tops = [top([("c", 0.5, 0.2), ("a", 0.5, 0.1), ("e", 0.1, 0.9)]),
            top([]),
            top([("b", 0.5, 0.2), ("d", 0.7, 0.0), ("f", 0.5, 0.1)])]
    assert merge_tops(tops, 10, [["x"]]) == ["d", "b", "c", "a", "f", "e"]
    assert merge_tops(tops, 3, [["x"]]) == ["d", "b", "c"]
    assert merge_tops([top([]), top([])], 5, [["x"]]) == []
