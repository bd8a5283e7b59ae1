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
