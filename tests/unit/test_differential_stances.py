"""The differential tool's labels: a pattern whose emotives KATO and ours store differently (stance Q5) stays
labelled in the cognition-data of an observe made before another session's clear-all."""

from __future__ import annotations

from tests.tools.kato_differential import Scenario, Tracker, context_for, pre_potential, tie_at_pruning_cut

LEARNED = "PTRN|" + "a" * 40
PATH = f"cognition_data.predictions[{'a' * 40}].emotives.joy"


def _tracker() -> Tracker:
    tracker = Tracker(Scenario(index=0, nodes=1, sessions=[0, 0], steps=[]))
    steps = [({"op": "observe", "s": 1, "body": {"strings": ["x", "y"], "emotives": {"joy": 2.0}}}, {}),
             ({"op": "learn", "s": 1}, {"pattern_name": "PTRN|" + "b" * 40}),
             ({"op": "observe", "s": 1, "body": {"strings": ["x"], "emotives": {"joy": 0.0}}}, {}),
             ({"op": "learn", "s": 1}, {"pattern_name": LEARNED}),  # KATO's accumulator still held joy 2.0
             ({"op": "observe", "s": 1, "body": {"strings": ["x"]}}, {})]
    for step, answer in steps:
        tracker.update(step, 200, answer)
    return tracker


def test_a_clear_all_by_another_session_keeps_the_label_of_the_last_observe():
    tracker = _tracker()
    cognition = {"op": "cognition-data", "s": 1}
    assert context_for(cognition, tracker, None, strict=False).stance(PATH) == "Q5"
    tracker.update({"op": "clear-all", "s": 0}, 200, {})
    assert context_for(cognition, tracker, None, strict=False).stance(PATH) == "Q5"
    predictions = {"op": "predictions", "s": 1}  # computed now, over the cleared node: nothing is labelled
    assert context_for(predictions, tracker, None, strict=False).stance(PATH.removeprefix("cognition_data.")) \
        is None


def test_strict_mode_labels_nothing():
    tracker = _tracker()
    tracker.update({"op": "clear-all", "s": 0}, 200, {})
    assert context_for({"op": "cognition-data", "s": 1}, tracker, None, strict=True).stance(PATH) is None


def _candidate(evidence: float, confidence: float, snr: float, fragmentation: int) -> dict:
    return {"evidence": evidence, "confidence": confidence, "snr": snr, "fragmentation": fragmentation}


def test_pre_potential_is_katos_pruning_key():
    assert pre_potential(_candidate(0.5, 1.0, 0.5, 0)) == 0.75 + 1.0
    assert pre_potential(_candidate(0.5, 1.0, 0.5, 2)) == 0.75 + 1 / 3
    assert pre_potential(_candidate(0.5, 1.0, 0.5, -1)) == 0.75  # no blocks: f = 0


def test_a_tie_across_the_pruning_cut_is_seen_and_one_inside_it_is_not():
    tied = [_candidate(1.0, 1.0, 1.0, 0)] * 4 + [_candidate(0.2, 0.5, 1.0, 1)] * 3  # keys 3.0 ×4, 1.2 ×3
    assert tie_at_pruning_cut(tied, max_predictions=2)  # the cut at 6 keeps two of the three at 1.2
    assert tie_at_pruning_cut(tied, max_predictions=1)  # the cut at 3 keeps three of the four at 3.0
    assert not tie_at_pruning_cut(tied[1:], max_predictions=1)  # exactly the three at 3.0 are kept
    assert not tie_at_pruning_cut(tied, max_predictions=3)  # nothing is pruned below 9 candidates
