"""The vectorised ``scoring.score`` returns exactly what the readable ``metrics.score_reference`` returns."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.ops.bench.workloads import standard_patterns, standard_queries
from schema.config import RANK_SORT_ALGOS
from schema.learning import make_pattern
from schema.rules.matching import CandidateMatch, extract
from schema.rules.memory_kb import MemoryKB
from schema.rules.metrics import CorpusStats, RankingOptions, future_key, pattern_intrinsics
from schema.rules.metrics import score_reference as _score_reference
from schema.rules.query import QueryOptions
from schema.rules.reference import match_candidates, weight_symbols
from schema.rules.scoring import _JOIN_SYMBOLS, _plain_futures, _sha1_text, score

SYMBOLS = ["a", "b", "c", "d", "e", "ab", "abc", "x", "y", "é", "q'", 'q"', "back\\slash", ""]


def same_value(got, expected, where: str) -> None:
    assert type(got) is type(expected), (where, got, expected)
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(got), where
        else:
            assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-12), (where, got, expected)
    elif isinstance(expected, dict):
        assert list(got) == list(expected), where
        for key in expected:
            same_value(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            same_value(g, e, f"{where}[{i}]")
    else:
        assert got == expected, (where, got, expected)


def assert_same(got, expected) -> None:
    got_preds, got_futures = got
    exp_preds, exp_futures = expected
    assert [p["name"] for p in got_preds] == [p["name"] for p in exp_preds]
    for g, e in zip(got_preds, exp_preds):
        assert list(g) == list(e), "key order"
        same_value(g, e, e["name"])
    same_value(got_futures, exp_futures, "future_potentials")


events = st.lists(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3), min_size=1, max_size=6)
maybe_sorted = st.booleans()


@st.composite
def scenarios(draw):
    sort_events = draw(maybe_sorted)
    corpus = draw(st.lists(events, min_size=1, max_size=30))
    if sort_events:
        corpus = [[sorted(e) for e in p] for p in corpus]
    names = [f"PTRN|{i:03d}" for i in range(len(corpus))]
    if draw(st.booleans()):  # duplicate names (merged shard tops may repeat a pattern)
        names = [f"PTRN|{i % 4}" for i in range(len(corpus))]
    stm = draw(events)
    cutoff = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 0.6]))
    token = draw(st.booleans())
    fuzzy = draw(st.sampled_from([0.0, 0.0, 0.0, 0.7]))
    candidates = [m for name, pattern in zip(names, corpus)
                  for m in [extract(name, pattern, stm, cutoff, token, fuzzy)] if m is not None]

    symbols = sorted({s for p in corpus for e in p for s in e} | {s for e in stm for s in e})
    tup = draw(st.sampled_from([0, 1, len(corpus), 3 * len(corpus) + 7]))
    present = st.sampled_from(symbols)
    pmf = draw(st.dictionaries(present, st.integers(0, max(tup, 1) + 2), max_size=len(symbols)))
    symbol_freq = draw(st.dictionaries(present, st.integers(0, 9), max_size=len(symbols)))
    affinity = draw(st.dictionaries(present, st.dictionaries(st.sampled_from(["joy", "fear"]),
                                                             st.floats(-3, 3, allow_nan=False), max_size=2),
                                    max_size=len(symbols)))
    frequencies = draw(st.dictionaries(st.sampled_from(names), st.integers(0, 5), max_size=len(names)))
    emotives = draw(st.dictionaries(st.sampled_from(names), st.lists(
        st.dictionaries(st.sampled_from(["joy", "fear"]), st.floats(-2, 2, allow_nan=False), max_size=2),
        max_size=3), max_size=len(names)))
    total_symbols = draw(st.sampled_from([0, 1, 2, len(symbols), 50]))
    intrinsic_names = draw(st.sets(st.sampled_from(names), max_size=len(names)))
    intrinsics = {n: pattern_intrinsics(p, pmf, total_symbols, tup)
                  for n, p in zip(names, corpus) if n in intrinsic_names}
    stats = CorpusStats(total_symbols=total_symbols, total_unique_patterns=tup,
                        total_pattern_frequencies=draw(st.sampled_from([0, 1, len(corpus), 40])),
                        pmf=pmf, symbol_freq=symbol_freq, frequencies=frequencies, emotives=emotives,
                        intrinsics=intrinsics, affinity=affinity)
    options = RankingOptions(max_predictions=draw(st.sampled_from([1, 1, 2, 3, 5, 12])),
                             rank_sort_algo=draw(st.sampled_from(RANK_SORT_ALGOS)),
                             affinity_emotive=draw(st.sampled_from([None, "joy", "fear"])))
    weights = draw(st.sampled_from([None, "state", "all"]))
    weight_syms = (None if weights is None else weight_symbols(stm, candidates) if weights == "state"
                   else [s for c in candidates for e in c.events for s in e])
    total = draw(st.sampled_from([None, len(candidates), len(candidates) + 5, 1000]))
    return candidates, stm, stats, options, weight_syms, total


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios())
def test_fast_score_matches_reference(scenario):
    candidates, stm, stats, options, weight_syms, total = scenario
    expected = _score_reference(list(candidates), stm, stats, options, weight_syms, total)
    got = score(list(candidates), stm, stats, options, weight_syms, total)
    assert_same(got, expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(max_size=4), max_size=3), min_size=1, max_size=4))
def test_plain_future_text_is_the_future_key_json(future):
    if _plain_futures([future]):
        text = '[["' + '"], ["'.join(map(_JOIN_SYMBOLS, map(sorted, future))) + '"]]'
        assert _sha1_text(text) == future_key(future)


def test_unusual_future_symbols_take_the_json_path():
    base = dict(events=[["a"]], length=1, matches=["a"], past=[], present=[["a"]], missing=[], extras=[],
                similarity=0.5, evidence=0.5, confidence=1.0, snr=1.0, fragmentation=0.0)
    stats = CorpusStats(total_symbols=2, total_unique_patterns=3, total_pattern_frequencies=3, pmf={"a": 2})
    for futures in ([[[2, 1]], [[1, 2]], [[3]]], [[["b", "a"]], [["a", "b"]], [[]]], [[['q"']], [["é"]], [["a"]]]):
        candidates = [CandidateMatch(name=f"P{i}", future=f, **base) for i, f in enumerate(futures)]
        got = score(candidates, [["a"]], stats, RankingOptions(3))
        assert_same(got, _score_reference(candidates, [["a"]], stats, RankingOptions(3)))


def test_pruning_ties_and_nan_fallback():
    base = dict(events=[["a"], ["b"]], length=2, matches=["a"], past=[], present=[["a"]], future=[["b"]],
                missing=[], extras=[])
    candidates = [CandidateMatch(name=f"P{i % 7}", similarity=[0.5, 0.25][i % 2], evidence=0.5, confidence=1.0,
                                 snr=1.0, fragmentation=0.0, **base) for i in range(40)]
    stats = CorpusStats(total_symbols=2, total_unique_patterns=3, total_pattern_frequencies=3, pmf={"a": 2, "b": 1})
    for max_predictions in (1, 2, 3, 5, 13, 14):
        options = RankingOptions(max_predictions)
        assert_same(score(candidates, [["a"]], stats, options), _score_reference(candidates, [["a"]], stats, options))
    candidates[3].snr = math.nan
    options = RankingOptions(2)
    assert_same(score(candidates, [["a"]], stats, options), _score_reference(candidates, [["a"]], stats, options))


def standard_case(finalize: bool):
    patterns = standard_patterns(4000, vocabulary=200)
    kb = MemoryKB()
    for i, events_ in enumerate(patterns):
        p = make_pattern(events_, emotives=[{"joy": float(i % 5) - 2.0}] if i % 3 == 0 else [])
        if p is not None:
            kb.learn(p, 5)
    if finalize:
        kb.finalize_training()
    return kb, standard_queries(patterns, 4)


def test_standard_workload_matches_reference():
    for finalize in (False, True):
        kb, queries = standard_case(finalize)
        items = list(kb.items())
        for q in queries:
            candidates = match_candidates(q, items, QueryOptions(0.1, 100))
            assert len(candidates) > 30
            for options in (RankingOptions(100), RankingOptions(5), RankingOptions(10, "tfidf_score", "joy"),
                            RankingOptions(7, "predictive_information")):
                weights = weight_symbols(q, candidates)
                got = score(candidates, q, kb.stats(), options, weights)
                expected = _score_reference(candidates, q, kb.stats(), options, weights)
                assert_same(got, expected)
                assert repr(got) == repr(expected)  # bit-identical on this workload
