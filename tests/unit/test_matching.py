import difflib

from hypothesis import given, settings
from hypothesis import strategies as st

from schema.rules.matching import extract, matching_blocks, similarity, split_events

tokens = st.lists(st.sampled_from("abcdefg"), max_size=30)


@settings(max_examples=400, deadline=None)
@given(tokens, tokens)
def test_blocks_equal_difflib_on_sequences_with_repeats(a, b):
    expected = [tuple(m) for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()][:-1]
    assert matching_blocks(a, b) == expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from("ab"), min_size=200, max_size=260), st.lists(st.sampled_from("ab"), max_size=40))
def test_blocks_equal_difflib_beyond_the_autojunk_size(a, b):
    expected = [tuple(m) for m in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()][:-1]
    assert matching_blocks(a, b) == expected


def test_verified_similarities():
    assert round(similarity(["apple", "banana", "cherry"], ["apple", "banana"], False), 4) == 0.7742
    p = ["token1", "token2", "token3", "token4"]
    s = ["token1", "token2", "token3"]
    assert round(similarity(p, s, False), 4) == 0.8511
    assert round(similarity(p, s, True), 4) == 0.8571
    assert similarity([], [], True) == 0.0


def test_split_events_fix_up_with_repeated_symbols():
    past, present, future = split_events([["a"], ["a"], ["b"]], 1, 2, "a")
    assert (past, present, future) == ([], [["a"], ["a"], ["b"]], [])


def test_straddling_event_goes_to_past_then_fix_up_moves_it():
    m = extract("p", [["a", "b"], ["c"]], [["b"], ["c"]], 0.0)
    assert (m.past, m.present, m.future) == ([], [["a", "b"], ["c"]], [])
    assert m.missing == [["a"], []]


def test_snr_uses_flat_diff_extras():
    m = extract("p", [["a"], ["b"], ["c"]], [["b"], ["a"], ["b"], ["c"]], 0.0)
    assert m.extras == [[], [], [], []]
    assert m.snr == 5 / 7


def test_below_cutoff_is_dropped_and_zero_blocks_need_threshold_zero():
    assert extract("p", [["a"], ["b"]], [["x"], ["y"]], 0.1) is None
    m = extract("p", [["known"], ["pattern"], ["here"]], [["unknown1"], ["unknown2"]], 0.0)
    assert m.similarity == 0.0 and m.matches == [] and m.fragmentation == -1.0 and m.snr == -1.0
    assert m.present == [["known"], ["pattern"], ["here"]]
    assert m.missing == [["known"], ["pattern"], ["here"]]
    assert m.extras == [["unknown1"], ["unknown2"]]
    assert m.pre_potential == 0.0 * -1.0 + 0.0


def test_character_mode_without_shared_token_is_dropped_above_zero():
    assert extract("p", [["abc"], ["def"]], [["abd"], ["deg"]], 0.1, use_token_matching=False) is None


def test_fuzzy_tokens_record_anomalies_and_keep_literal_missing():
    m = extract("p", [["apple", "banana", "cherry", "date", "elderberry"]], [["apple", "bannana", "chery"]],
                0.1, fuzzy_token_threshold=0.85)
    assert m.matches == ["apple", "bannana", "chery"]
    observed = {a["observed"]: a for a in m.anomalies}
    assert set(observed) == {"bannana", "chery"}
    assert observed["bannana"]["expected"] == "banana"
    assert all(0.85 <= a["similarity"] <= 1 for a in m.anomalies)
    assert "banana" in m.missing[0]
    exact = extract("p", [["a", "b"]], [["a", "b"]], 0.1, fuzzy_token_threshold=0.85)
    assert exact.anomalies == []


def test_token_similarity_to_the_last_bit_as_kato_reports_it():
    """KATO's general path scores 2·M/T as a percentage and divides by 100 again: 2·1/6 reads 0.33333333333333326,
    not 1/3; its filter stage compares 2·M/T as is, and its single-symbol path reports it as is."""
    pattern, state = ["a", "x", "y", "z"], ["a", "q"]
    assert similarity(pattern, state, True) == 0.33333333333333326
    assert similarity(pattern, state, True, as_ranked=False) == 1 / 3
    assert similarity(["a", "x", "y", "z", "w"], ["a"], True) == 1 / 3


def test_the_kernel_scales_as_the_rule():
    import numpy as np

    from actors.kernels import token_similarities

    tokens = np.array([0, 1, 2, 3, 0, 4], np.int64)  # pattern 0: a x y z; pattern 1: a w
    offsets = np.array([0, 4, 6], np.int64)
    candidates, state = np.array([0, 1], np.int64), np.array([0, 5], np.int64)  # state: a q
    ranked = token_similarities(tokens, offsets, candidates, state, ranked=True).tolist()
    raw = token_similarities(tokens, offsets, candidates, state, ranked=False).tolist()
    assert ranked == [similarity(list("axyz"), ["a", "q"], True), similarity(["a", "w"], ["a", "q"], True)]
    assert ranked[0] == 0.33333333333333326 and raw == [1 / 3, 0.5]
