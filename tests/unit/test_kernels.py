import difflib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import LCSseq

from actors.kernels import lcs_length, matching_blocks

ids = st.lists(st.integers(-2, 5), max_size=40)


@settings(max_examples=500, deadline=None)
@given(ids, ids)
def test_compiled_blocks_equal_difflib(a, b):
    out = np.empty((min(len(a), len(b)) + 1, 3), np.int64)
    k = matching_blocks(np.array(a, np.int32), np.array(b, np.int32), out)
    expected = [tuple(m) for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()][:-1]
    assert [tuple(int(v) for v in row) for row in out[:k]] == expected


@settings(max_examples=300, deadline=None)
@given(ids, ids)
def test_compiled_lcs_equals_rapidfuzz(a, b):
    assert lcs_length(np.array(a, np.int32), np.array(b, np.int32)) == LCSseq.similarity(a, b)


events_strategy = st.lists(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=3), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=8), events_strategy)
def test_fields_kernel_equals_reference_extraction(patterns, stm):
    from actors.kernels import candidate_fields
    from actors.shard import Shard
    from schema.rules.matching import extract

    shard = Shard()
    names = [f"{i:040x}" for i in range(len(patterns))]
    shard.add("kb", names, patterns)
    index = shard.kb("kb")
    state_ids = shard.vocabulary.lookup_state([s for e in stm for s in e])
    candidates = np.array([index.local_of(n) for n in names], dtype=np.int64)
    k, m, _np, ev, conf, snr, pre = candidate_fields(
        index.tokens.view(), index.offsets.view(), index.event_sizes.view(), index.event_offsets.view(),
        candidates, state_ids, np.zeros((1, 1), np.bool_), False)
    for position, local in enumerate(candidates.tolist()):
        expected = extract(names[local], index.events_of(local), stm, 0.0)
        assert (k[position], m[position]) == (expected.number_of_blocks, len(expected.matches))
        assert (ev[position], conf[position], snr[position]) == (expected.evidence, expected.confidence,
                                                                  expected.snr)
        assert pre[position] == expected.pre_potential


@settings(max_examples=400, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=8), st.lists(st.lists(st.sampled_from("abcdefxy"), min_size=1,
       max_size=3), min_size=1, max_size=6), st.sampled_from([0.0, 0.1, 0.3, 0.6]))
def test_token_rank_equals_general_kernels(patterns, stm, cutoff):
    """The one-pass ranking kernel keeps the same candidates with bit-identical keys as LCS + blocks."""
    from actors.kernels import candidate_fields, token_rank, token_similarities
    from actors.shard import Shard

    shard = Shard()
    shard.add("kb", [f"{i:040x}" for i in range(len(patterns))], patterns)
    index = shard.kb("kb")
    arrays = (index.tokens.view(), index.offsets.view(), index.event_sizes.view(), index.event_offsets.view())
    state_ids = shard.vocabulary.lookup_state([s for e in stm for s in e])
    candidates = index.all_ids()
    kept, sims, pre = token_rank(*arrays, candidates, state_ids, shard._first_in_state(state_ids), cutoff)

    expected_sims = token_similarities(arrays[0], arrays[1], candidates, state_ids, ranked=True)
    k, _m, _np, _ev, _conf, _snr, expected_pre = candidate_fields(
        *arrays, candidates, state_ids, np.zeros((1, 1), np.bool_), False)
    expected_kept = (expected_sims >= cutoff) & ((k > 0) | (cutoff <= 0.0))
    assert kept.tolist() == expected_kept.tolist()
    assert sims[kept].tolist() == expected_sims[kept].tolist()
    assert pre[kept].tolist() == expected_pre[kept].tolist()


@settings(max_examples=400, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=10), st.lists(st.lists(st.sampled_from("abcdefxy"),
       min_size=1, max_size=3), min_size=1, max_size=6), st.sampled_from([0.05, 0.1, 0.3, 0.6]),
       st.integers(1, 3))
def test_posting_scores_equal_the_token_kernel(patterns, stm, cutoff, batches):
    """Scoring from posting entries gives the same kept patterns and keys as reading every pattern."""
    from actors.shard import Shard

    shard = Shard()
    names = [f"{i:040x}" for i in range(len(patterns))]
    for part in range(batches):  # postings built over several add batches
        shard.add("kb", names[part::batches], patterns[part::batches])
    index = shard.kb("kb")
    state_ids = shard.vocabulary.lookup_state([s for e in stm for s in e])
    ids, sims, pre = shard._posting_fields(index, state_ids, cutoff)
    expected = shard._token_fields(index, index.containing_any(state_ids[state_ids >= 0]), state_ids, cutoff)
    order = np.argsort(ids)
    assert ids[order].tolist() == expected[0].tolist()
    assert sims[order].tolist() == expected[1].tolist()
    assert pre[order].tolist() == expected[2].tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(events_strategy, min_size=1, max_size=8), st.lists(st.lists(st.sampled_from("abcdefxy"), min_size=1,
       max_size=3), min_size=1, max_size=6), st.sampled_from([0.0, 0.1, 0.4]), st.booleans())
def test_materialized_candidates_equal_the_reference_extraction(patterns, stm, cutoff, token_mode):
    """The shard's batched extraction gives exactly ``extract``'s fields, in the order asked."""
    from actors.shard import Shard
    from schema.rules.matching import extract
    from schema.rules.query import QueryOptions

    shard = Shard()
    names = [f"{i:040x}" for i in range(len(patterns))]
    shard.add("kb", names, patterns)
    asked = [*reversed(names), "unknown"]
    options = QueryOptions(recall_threshold=cutoff, use_token_matching=token_mode)
    got = shard.materialize("kb", stm, options, asked)
    single = sum(len(e) for e in stm) == 1
    expected = [m for name in asked if name in names
                if (m := extract(name, patterns[names.index(name)], stm, 0.0 if single else cutoff, token_mode))]
    assert got == expected


fuzzy_events = st.lists(st.lists(st.sampled_from(["ab", "abc", "abd", "b", "c", "bcd", "x"]), min_size=1, max_size=3),
                        min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(st.lists(fuzzy_events, min_size=1, max_size=6),
       st.lists(st.lists(st.sampled_from(["ab", "abc", "b", "bc", "zz", "abx"]), min_size=1, max_size=3), min_size=1,
                max_size=4),
       st.sampled_from([0.5, 0.6, 0.85]))
def test_fuzzy_fields_kernel_equals_reference_extraction(patterns, stm, threshold):
    """Fuzzy tokens, including state tokens the shard has never seen (negative ids) matching fuzzily first."""
    from actors.kernels import candidate_fields
    from actors.shard import Shard
    from schema.rules.matching import extract

    shard = Shard()
    names = [f"{i:040x}" for i in range(len(patterns))]
    shard.add("kb", names, patterns)
    index = shard.kb("kb")
    state = [s for e in stm for s in e]
    candidates = np.array([index.local_of(n) for n in names], dtype=np.int64)
    k, m, _np, ev, conf, snr, pre = candidate_fields(
        index.tokens.view(), index.offsets.view(), index.event_sizes.view(), index.event_offsets.view(),
        candidates, shard.vocabulary.lookup_state(state), shard._fuzzy_hits(state, threshold), True)
    for position, local in enumerate(candidates.tolist()):
        expected = extract(names[local], index.events_of(local), stm, 0.0, True, threshold)
        assert (k[position], m[position]) == (expected.number_of_blocks, len(expected.matches))
        assert (ev[position], conf[position], snr[position]) == (expected.evidence, expected.confidence,
                                                                  expected.snr)
        assert pre[position] == expected.pre_potential


def test_materialized_split_moves_a_straddled_first_event_into_the_present():
    """KATO's fix-up on the compact path: the first match sits in the last past event, which joins the
    present (``[a, b]`` below); without blocks the whole pattern is present."""
    from actors.shard import Shard
    from schema.rules.matching import extract
    from schema.rules.query import QueryOptions

    patterns = [[["a", "b"], ["c"]], [["x", "a", "b"], ["y"], ["c", "d"]], [["q"], ["r"]]]
    shard = Shard()
    names = [f"{i:040x}" for i in range(3)]
    shard.add("kb", names, patterns)
    got = shard.materialize("kb", [["b"], ["c"]], QueryOptions(recall_threshold=0.0), names)
    assert [(m.past, m.present, m.future) for m in got] == [
        ([], [["a", "b"], ["c"]], []), ([], [["x", "a", "b"], ["y"], ["c", "d"]], []), ([], [["q"], ["r"]], [])]
    assert got == [extract(n, p, [["b"], ["c"]], 0.0) for n, p in zip(names, patterns)]
