"""Spec §2.10: the verified worked examples (general path, token mode, threshold 0)."""

import pytest

from tests.unit.kato_helpers import learn_events, new_session, observe_events

EXAMPLES = [
    # pattern, stm, similarity, past, present, future, missing, extras, (evidence, confidence, snr, frag)
    ([["alpha"], ["beta"], ["gamma"]], [["alpha"], ["beta"]], 0.8, [], [["alpha"], ["beta"]], [["gamma"]],
     [[], []], [[], []], (2 / 3, 1.0, 1.0, 0.0)),
    ([["a", "b"], ["c", "d"], ["e", "f"]], [["a"], ["c"]], 0.5, [], [["a", "b"], ["c", "d"]], [["e", "f"]],
     [["b"], ["d"]], [[], []], (1 / 3, 0.5, 1.0, 1.0)),
    ([["hello", "world"], ["bar", "foo"]], [["hello"], ["foo"]], 2 / 3, [], [["hello", "world"], ["bar", "foo"]],
     [], [["world"], ["bar"]], [[], []], (0.5, 0.5, 1.0, 1.0)),
    ([["pred1", "pred2"], ["pred3"]], [["pred1"], ["pred2"]], 0.8, [], [["pred1", "pred2"]], [["pred3"]],
     [[]], [[], []], (2 / 3, 1.0, 1.0, 0.0)),
    ([["a", "b"], ["c"]], [["b"], ["c"]], 0.8, [], [["a", "b"], ["c"]], [], [["a"], []], [[], []],
     (2 / 3, 2 / 3, 1.0, 0.0)),
    ([["a"], ["b"]], [["a", "x"], ["b"], ["y"]], 2 / 3, [], [["a"], ["b"]], [], [[], []], [["x"], [], ["y"]],
     (1.0, 1.0, 1 / 3, 1.0)),
    ([["x"], ["y"], ["z"]], [["q"], ["x"], ["y"]], 2 / 3, [], [["x"], ["y"]], [["z"]], [[], []],
     [["q"], [], []], (2 / 3, 1.0, 0.6, 0.0)),
    ([["a", "a", "b", "b", "c"]], [["a", "b"]], 4 / 7, [], [["a", "a", "b", "b", "c"]], [], [["c"]], [[]],
     (0.4, 0.4, 1.0, 0.0)),
    ([["known"], ["pattern"], ["here"]], [["unknown1"], ["unknown2"]], 0.0, [],
     [["known"], ["pattern"], ["here"]], [], [["known"], ["pattern"], ["here"]], [["unknown1"], ["unknown2"]],
     (0.0, 0.0, -1.0, -1.0)),
]


@pytest.mark.parametrize(("pattern", "stm", "sim", "past", "present", "future", "missing", "extras", "nums"),
                         EXAMPLES)
def test_worked_example(pattern, stm, sim, past, present, future, missing, extras, nums):
    session = new_session(recall_threshold=0.0)
    name = learn_events(session, pattern)
    observe_events(session, stm)
    predictions, _ = session.predictions()
    assert [p["name"] for p in predictions] == [name.removeprefix("PTRN|")]
    p = predictions[0]
    assert p["similarity"] == pytest.approx(sim, abs=1e-12)
    assert (p["past"], p["present"], p["future"]) == (past, present, future)
    assert (p["missing"], p["extras"]) == (missing, extras)
    assert (p["evidence"], p["confidence"], p["snr"], p["fragmentation"]) == pytest.approx(nums, abs=1e-12)
    assert isinstance(p["fragmentation"], float) and isinstance(p["snr"], float)
    assert p["sequence"] == pattern


@pytest.mark.parametrize(("pattern_len", "observed", "expected"), [(3, 2, 0.8), (4, 2, 2 / 3), (10, 2, 1 / 3),
                                                                  (10, 5, 2 / 3)])
def test_similarity_thresholds_the_tests_rely_on(pattern_len, observed, expected):
    session = new_session(recall_threshold=0.0)
    events = [[f"e{i}"] for i in range(pattern_len)]
    learn_events(session, events)
    observe_events(session, events[:observed])
    assert session.predictions()[0][0]["similarity"] == pytest.approx(expected, abs=1e-12)
