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
    from actors.matching import extract
    from actors.shard import Shard

    shard = Shard()
    names = [f"p{i}" for i in range(len(patterns))]
    shard.add("kb", names, patterns)
    index = shard.kb("kb")
    state_ids = shard.vocabulary.lookup_state([s for e in stm for s in e])
    candidates = np.array([index.local_ids[n] for n in dict.fromkeys(names)], dtype=np.int64)
    k, m, _np, ev, conf, snr, pre = candidate_fields(
        index.tokens.view(), index.offsets.view(), index.event_sizes.view(), index.event_offsets.view(),
        candidates, state_ids, np.zeros((1, 1), np.bool_), False)
    for position, local in enumerate(candidates.tolist()):
        expected = extract(index.names[local], index.events_of(local), stm, 0.0)
        assert (k[position], m[position]) == (expected.number_of_blocks, len(expected.matches))
        assert (ev[position], conf[position], snr[position]) == (expected.evidence, expected.confidence,
                                                                  expected.snr)
        assert pre[position] == expected.pre_potential
