"""Filter pipeline stages (spec §3.1–§3.2): the shards' vectorized stages equal the reference's."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.shard import Shard
from cluster.ops.bench.workloads import near_duplicate_patterns
from schema.learning import make_pattern
from schema.rules.memory_kb import MemoryKB
from schema.rules.query import FilterParams, QueryOptions
from schema.rules.reference import pipeline_names, predict
from serve_app.local_shards import LocalShards
from serve_app.predictor import Predictor
from tests.unit.test_predictor_differential import assert_same, build, corpora, events

STAGES = ["minhash", "length", "jaccard", "bloom", "rapidfuzz"]
filter_params = st.builds(
    FilterParams,
    length_min_ratio=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    length_max_ratio=st.sampled_from([0.0, 1.0, 1.5, 2.0]),
    jaccard_threshold=st.sampled_from([0.0, 0.2, 0.3, 0.6]),
    jaccard_min_overlap=st.sampled_from([0, 1, 2, 3]),
    minhash_threshold=st.sampled_from([0.0, 0.3, 0.7]),
    minhash_bands=st.sampled_from([20, 20, 25]),
    minhash_rows=st.sampled_from([5, 5, 4]),
    minhash_num_hashes=st.sampled_from([100, 100, 64]),
).map(lambda p: FilterParams.from_config(vars(p)))
pipeline_options = st.builds(
    QueryOptions,
    recall_threshold=st.sampled_from([0.0, 0.1, 0.4]),
    max_predictions=st.integers(1, 6),
    use_token_matching=st.booleans(),
    filter_pipeline=st.lists(st.sampled_from(STAGES), min_size=1, max_size=3).map(tuple),
    filters=filter_params,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, stm=events, opts=pipeline_options, shard_count=st.sampled_from([1, 2, 4]))
def test_sharded_pipeline_equals_reference(corpus, stm, opts, shard_count):
    kb, predictor = build(corpus, shard_count)
    assert_same(predictor.predict("kb", stm, opts), predict(stm, kb.items(), kb.stats(), opts))


@settings(max_examples=80, deadline=None)
@given(corpus=corpora, stm=events, opts=pipeline_options)
def test_pipeline_results_are_a_subset_of_the_unfiltered(corpus, stm, opts):
    kb, _ = build(corpus, 1)
    plain = {p["name"] for p in predict(stm, kb.items(), kb.stats(),
                                        QueryOptions(opts.recall_threshold, 10_000, opts.use_token_matching))[0]}
    filtered = {p["name"] for p in predict(stm, kb.items(), kb.stats(),
                                           QueryOptions(opts.recall_threshold, 10_000, opts.use_token_matching,
                                                        filter_pipeline=opts.filter_pipeline,
                                                        filters=opts.filters))[0]}
    assert filtered <= plain


def test_python_only_pipelines_return_nothing():
    kb, predictor = build([[["a"], ["b"]], [["a"], ["c"]]], 1)
    for pipeline in (("bloom",), ("rapidfuzz",), ("bloom", "rapidfuzz")):
        opts = QueryOptions(filter_pipeline=pipeline)
        assert pipeline_names([["a"], ["b"]], kb.items(), opts) == set()
        assert predictor.predict("kb", [["a"], ["b"]], opts) == ([], [])
    assert predictor.predict("kb", [["a"], ["b"]], QueryOptions(filter_pipeline=("length", "bloom")))[0]


def test_exact_query_is_found_by_minhash_and_jaccard():
    corpus = [[["alpha", "beta"], ["gamma"], ["delta"]], [["x"], ["y"], ["z"]], [["alpha"], ["q"], ["r"]]]
    kb, predictor = build(corpus, 2)
    for pipeline in (("minhash",), ("jaccard",), ("minhash", "jaccard")):
        preds, _ = predictor.predict("kb", corpus[0], QueryOptions(filter_pipeline=pipeline))
        assert preds and preds[0]["similarity"] == 1.0


def test_minhash_recall_on_near_duplicates():
    rng = np.random.default_rng(7)
    corpus = near_duplicate_patterns(150, 6, seed=7)
    kb = MemoryKB()
    shard = Shard()
    for pattern in corpus:
        p = make_pattern(pattern)
        if kb.learn(p, 5):
            shard.add("kb", [p.name], [p.events])
    predictor = Predictor(LocalShards([shard]), lambda *_: kb.stats())
    found = relevant = 0
    for q in rng.choice(len(corpus), size=120, replace=False).tolist():
        query = corpus[q]
        query_tokens = {s for e in query for s in e}
        truth = {name for name, events in kb.items()
                 if len(query_tokens & (t := {s for e in events for s in e})) / len(query_tokens | t) >= 0.7}
        lsh = {p["name"] for p in predictor.predict("kb", query, QueryOptions(0.1, 10_000,
                                                                              filter_pipeline=("minhash",)))[0]}
        exact = {p["name"] for p in predictor.predict("kb", query, QueryOptions(0.1, 10_000))[0]}
        assert lsh <= exact
        found += len(truth & lsh)
        relevant += len(truth)
    assert relevant > 300
    assert found / relevant >= 0.95, f"recall {found}/{relevant}"
