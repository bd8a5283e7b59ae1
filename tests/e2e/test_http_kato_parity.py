"""Over real HTTP, where the spec was wrong or silent: vector neighbours (§5, every scenario real KATO 3.10.1
answered, ``tests/unit/vector_scenarios``), observe-sequence stm_length (§1.10), character mode at
recall_threshold 0.0 (§2.8, stance Q18), predictions of an empty STM, and emotives too large to add up."""

from __future__ import annotations

import itertools
import json

import pytest
from rapidfuzz import fuzz

from tests.e2e.kato_client import KatoClient
from tests.unit import vector_scenarios as vs

pytestmark = pytest.mark.integration

_nodes = itertools.count()


@pytest.mark.parametrize("scenario", sorted(vs.SCENARIOS))
def test_vectors_answer_as_kato(base_url, scenario):
    node = vs.http_node(base_url, f"parity_vectors_{next(_nodes)}_{scenario}")
    assert json.loads(json.dumps(vs.SCENARIOS[scenario](node))) == vs.EXPECTED[scenario]


def test_observe_sequence_stm_length_after_learn_after_each(base_url):
    """The colleague's repro: KATO answers 0 (the learn ran; three symbols, so a pattern was stored)."""
    k = KatoClient(base_url)
    body = k.observe_sequence([{"strings": ["bc", "b", "cart"]}], learn_after_each=True)
    assert [r["stm_length"] for r in body["results"]] == [0]
    assert body["auto_learned_patterns"][0].startswith("PTRN|") and body["final_stm_length"] == 0
    one = k.observe_sequence([{"strings": ["a"]}, {"strings": ["b"], "unique_id": "u"}], learn_after_each=True)
    assert [r["stm_length"] for r in one["results"]] == [0, 0] and one["auto_learned_patterns"] == ["", ""]
    kept = k.observe_sequence([{"strings": ["a"]}, {"strings": ["b"]}], learn_at_end=True)
    assert [r["stm_length"] for r in kept["results"]] == [1, 2] and kept["final_stm_length"] == 0


def _character_mode_node(base_url: str) -> tuple[KatoClient, str, str]:
    teacher = KatoClient(base_url)
    near = teacher.learn_sequence([["apple"], ["banana"], ["cherry"]])
    unrelated = teacher.learn_sequence([["zzz"], ["qqq"]])
    return teacher, near.removeprefix("PTRN|"), unrelated.removeprefix("PTRN|")


def _cognition_predictions(client: KatoClient) -> list[dict]:
    return client.http.get(client.url("/cognition-data")).json()["cognition_data"]["predictions"]


def test_character_mode_at_threshold_zero_answers_every_candidate(base_url):
    """Q18: KATO answers nothing (RapidFuzz refuses its cutoff of -1e-6); ours every candidate, as token mode
    at 0.0 does, in the predictions endpoint and in the observe-time predictions."""
    teacher, near, unrelated = _character_mode_node(base_url)
    char = KatoClient(base_url, node_id=teacher.node_id, config={"use_token_matching": False, "recall_threshold": 0.0})
    token = KatoClient(base_url, node_id=teacher.node_id, config={"recall_threshold": 0.0})
    for client in (char, token):
        client.observe(["apple"])
        client.observe(["banana"])
    predictions = {p["name"]: p for p in char.predictions()}
    assert set(predictions) == {p["name"] for p in token.predictions()} == {near, unrelated}
    assert predictions[near]["similarity"] == fuzz.ratio("apple banana cherry", "apple banana") / 100.0
    assert predictions[near]["similarity"] == 0.7741935483870968
    zero = predictions[unrelated]  # no token in common: the fields of spec §2.8
    assert zero["similarity"] == fuzz.ratio("zzz qqq", "apple banana") / 100.0 == 0.10526315789473684
    assert (zero["matches"], zero["present"], zero["missing"], zero["extras"]) == (
        [], [["zzz"], ["qqq"]], [["zzz"], ["qqq"]], [["apple"], ["banana"]])
    assert (zero["fragmentation"], zero["snr"], zero["evidence"], zero["confidence"]) == (-1.0, -1.0, 0.0, 0.0)
    assert {p["name"] for p in _cognition_predictions(char)} == {near, unrelated}
    assert _cognition_predictions(char) == char.predictions()
    char.update_config({"recall_threshold": 0.1})
    char.observe(["apple"])
    assert {p["name"] for p in char.predictions()} == {near}  # above 0 a candidate needs a block


def test_empty_stm_predicts_nothing(base_url):
    """KATO answers a stale, node-level future_potentials for an empty STM (its processor's last list); ours
    answers [] with the [] predictions (README, How it maps to KATO)."""
    teacher = KatoClient(base_url)
    teacher.learn_sequence([["a"], ["b"], ["c"]])
    teacher.observe(["a"])
    teacher.observe(["b"])
    assert teacher.http.get(teacher.url("/predictions")).json()["future_potentials"]
    other = KatoClient(base_url, node_id=teacher.node_id)
    body = other.http.get(other.url("/predictions")).json()
    assert (body["predictions"], body["future_potentials"], body["count"]) == ([], [], 0)


def test_emotives_that_could_add_up_to_infinity_are_refused(base_url):
    k = KatoClient(base_url)
    for value in (1.7e308, -1.7e308, 1.0000000000000002e100):
        r = k.http.post(k.url("/observe"), json={"strings": ["a"], "emotives": {"e": value}})
        assert r.status_code == 422, r.text
        assert "at most 1e100" in json.dumps(r.json()["detail"])
    assert k.stm() == []
    for _ in range(2):
        k.observe(["a", "b"], emotives={"e": 1e100})
    assert k.http.get(k.url("/percept-data")).json()["percept_data"]["emotives"] == {"e": 1e100}
    name = k.learn()
    assert name.startswith("PTRN|")
    pattern = k.http.get(f"{base_url}/pattern/{name}", params={"node_id": k.node_id})
    assert pattern.status_code == 200
    r = k.http.post(f"{base_url}/bulk/learn", json={"node_id": k.node_id, "patterns": [
        {"events": [["x"], ["y"]], "emotives": [{"e": 1.7e308}, {"e": 1.7e308}]}]})
    assert r.status_code == 422 and "at most 1e100" in r.text
