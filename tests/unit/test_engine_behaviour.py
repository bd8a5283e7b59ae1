"""Spec §6.2 expectations that the engine alone decides (items named in each test)."""

import pytest

from schema.config import RANK_SORT_ALGOS
from schema.errors import EmptySTMError
from schema.rules.reference_kato import ReferenceKato
from tests.unit.kato_helpers import by_name, learn_events, new_session, observe_events


def test_items_1_to_3_events_sorted_by_code_point():
    s = new_session()
    s.observe(["hello"])
    s.observe(["c", "a", "b"])
    s.observe(["Zoo", "Apple", "apple"])
    s.observe(["test_2", "test_1", "test_10"])
    s.observe(["!special", "@symbol", "#hash"])
    s.observe(["z", "", "a", "middle"])
    s.observe(["10", "2", "1", "20", "100", "3"])
    assert s.state.stm == [["hello"], ["a", "b", "c"], ["Apple", "Zoo", "apple"], ["test_1", "test_10", "test_2"],
                           ["!special", "#hash", "@symbol"], ["", "a", "middle", "z"],
                           ["1", "10", "100", "2", "20", "3"]]


def test_item_4_empty_observations_are_skipped_but_count_time():
    s = new_session()
    for event in (["first"], [], ["second"], [], ["third"]):
        result = s.observe(event)
        assert result["status"] == "okay"
    assert s.state.stm == [["first"], ["second"], ["third"]]
    assert s.state.time == 5


def test_duplicates_in_an_event_are_kept():
    s = new_session()
    s.observe(["b", "a", "b"])
    assert s.state.stm == [["a", "b", "b"]]


def test_items_11_12_learn_names_and_minimum():
    s = new_session()
    name = learn_events(s, [["hello"], ["world"]])
    assert name == "PTRN|7d0678ba6305341ce0d25133ab086208656a562f"
    assert s.state.stm == []
    with pytest.raises(EmptySTMError):
        s.learn()
    s.observe(["alone"])
    assert s.learn() == ""
    assert s.state.stm == []
    assert learn_events(s, [["a", "b"]]).startswith("PTRN|")


def test_item_13_names_are_stable_across_sessions_and_nodes():
    kato = ReferenceKato()
    one, two = kato.session("n1"), kato.session("n2")
    assert learn_events(one, [["rep"], ["seq"]]) == learn_events(two, [["rep"], ["seq"]])
    assert learn_events(one, [["rep", "seq"]]) != learn_events(one, [["rep", "seq", "rep", "seq"]])
    assert learn_events(one, [["Hello"], ["x"]]) != learn_events(one, [["hello"], ["x"]])


def test_item_14_emotives_do_not_change_the_name():
    s = new_session()
    first = s.observe_sequence(observations=[{"strings": ["a"], "emotives": {"joy": 1.0}}, {"strings": ["b"]}],
                               learn_at_end=True)
    last = s.observe_sequence(observations=[{"strings": ["a"]}, {"strings": ["b"], "emotives": {"joy": 0.1}}],
                              learn_at_end=True)
    assert first["final_learned_pattern"] == last["final_learned_pattern"]


def _stored(s, name):
    kb = s.kato.backend.kb(s.kb_id)
    return kb.emotives[name.removeprefix("PTRN|")], kb.metadata[name.removeprefix("PTRN|")]


def test_item_18_emotives_stored_as_the_list_of_entries():
    s = new_session()
    for event, joy in ((["a"], 0.9), (["b"], 0.5), (["c"], 0.7)):
        s.observe(event, emotives={"joy": joy})
    name = s.learn()
    assert _stored(s, name)[0] == [{"joy": 0.9}, {"joy": 0.5}, {"joy": 0.7}]


@pytest.mark.parametrize(("count", "expected"), [(7, [2.0, 3.0, 4.0, 5.0, 6.0]), (12, [7.0, 8.0, 9.0, 10.0, 11.0])])
def test_item_19_emotives_trimmed_to_persistence(count, expected):
    s = new_session()
    for i in range(count):
        s.observe([f"s{i}"], emotives={"v": float(i)})
    name = s.learn()
    assert [e["v"] for e in _stored(s, name)[0]] == expected


def test_item_20_relearn_appends_then_trims():
    s = new_session()
    for v in (1.0, 2.0):
        s.observe([f"x{v}"], emotives={"v": v})
    name = s.learn()
    for v in (3.0, 4.0):
        s.observe([f"x{v - 2}"], emotives={"v": v})
    assert s.learn() == name
    assert [e["v"] for e in _stored(s, name)[0]] == [1.0, 2.0, 3.0, 4.0]
    other = new_session()
    for batch in ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0)):
        for i, v in enumerate(batch):
            other.observe([f"y{i}"], emotives={"v": v})
        name = other.learn()
    assert [e["v"] for e in _stored(other, name)[0]] == [2.0, 3.0, 4.0, 5.0, 6.0]


def test_item_23_metadata_stringified_deduplicated_and_accumulated():
    s = new_session()
    s.observe(["a"], metadata={"n": 123, "f": 45.67, "b": True, "k": "v1", "c": "constant"})
    s.observe(["b"], metadata={"k": "v1", "c": "constant", "l": [1, 2]})
    name = s.learn()
    s.observe(["a"], metadata={"k": "v2"})
    s.observe(["b"])
    s.learn()
    metadata = _stored(s, name)[1]
    assert metadata == {"n": ["123"], "f": ["45.67"], "b": ["True"], "k": ["v1", "v2"], "c": ["constant"],
                        "l": ["[1, 2]"]}


def test_item_24_observe_sequence_metadata():
    s = new_session()
    result = s.observe_sequence(observations=[
        {"strings": ["w1"], "metadata": {"book": "Alice in Wonderland", "chapter": 1, "author": "Lewis Carroll"}},
        {"strings": ["w2"], "metadata": {"book": "Through the Looking Glass", "chapter": 2,
                                         "author": "Lewis Carroll"}}], learn_at_end=True)
    metadata = _stored(s, result["final_learned_pattern"])[1]
    assert metadata == {"book": ["Alice in Wonderland", "Through the Looking Glass"], "chapter": ["1", "2"],
                        "author": ["Lewis Carroll"]}


def test_item_25_affinity_running_sums():
    kato = ReferenceKato()
    s = kato.session("aff")
    s.observe(["A"], emotives={"joy": 0.8})
    s.observe(["B"], emotives={"joy": 0.4})
    s.learn()
    affinity = kato.backend.kb(s.kb_id).affinity
    assert affinity["A"]["joy"] == pytest.approx(0.6) and affinity["B"]["joy"] == pytest.approx(0.6)
    s2 = kato.session("aff")
    s2.observe(["B"], emotives={"joy": 2.0})
    s2.observe(["C"], emotives={"joy": 2.0})
    s2.learn()
    assert affinity["B"]["joy"] == pytest.approx(2.6) and affinity["C"]["joy"] == pytest.approx(2.0)
    s3 = kato.session("aff")
    learn_events(s3, [["D"], ["E"]])
    assert "D" not in affinity
    s3.observe(["F"], emotives={"calm": 1.0})
    s3.observe(["G"], emotives={"joy": 1.0})
    s3.learn()
    assert affinity["F"] == {"calm": 1.0, "joy": 1.0}


def test_learn_resets_accumulators_q5():
    s = new_session()
    s.observe(["a"], emotives={"joy": 1.0}, metadata={"m": 1})
    s.observe(["b"])
    s.learn()
    assert s.state.emotives_accumulator == [] and s.state.metadata_accumulator == []


def test_item_26_auto_learn_clear_mode():
    s = new_session(max_pattern_length=3)
    assert s.observe(["a"])["auto_learned_pattern"] is None
    s.observe(["b"])
    result = s.observe(["c"])
    assert result["auto_learned_pattern"] == "PTRN|" + __import__("schema.naming").naming.pattern_hash(
        [["a"], ["b"], ["c"]])
    assert s.state.stm == [] and result["stm_length"] == 0
    s.observe(["after_clear"])
    assert s.state.stm == [["after_clear"]]


def test_item_27_rolling_windows():
    s = new_session(max_pattern_length=3, stm_mode="ROLLING")
    learned = [s.observe([x])["auto_learned_pattern"] for x in "ABCDE"]
    assert learned[:2] == [None, None] and all(learned[2:])
    assert s.state.stm == [["D"], ["E"]]
    two = new_session(max_pattern_length=2, stm_mode="ROLLING")
    for x in "ABCDE":
        two.observe([x])
    assert len(two.state.stm) == 1
    four = new_session(max_pattern_length=4, stm_mode="ROLLING")
    for x in "ABCDE":
        four.observe([x])
    assert len(four.state.stm) == 3
    hundred = new_session(max_pattern_length=4, stm_mode="ROLLING")
    names = {hundred.observe([f"s{i}"])["auto_learned_pattern"] for i in range(100)} - {None}
    assert len(names) == 97 and len(hundred.state.stm) == 3


def test_item_28_no_auto_learn_at_zero_and_invalid_mode_is_clear():
    s = new_session(max_pattern_length=0, stm_mode="ROLLING")
    for x in "ABCDEF":
        assert s.observe([x])["auto_learned_pattern"] is None
    assert len(s.state.stm) == 6
    odd = new_session(max_pattern_length=2, stm_mode="WHATEVER")
    odd.observe(["a"])
    odd.observe(["b"])
    assert odd.state.stm == []


def test_item_29_sequence_rolling_reports_names():
    s = new_session(max_pattern_length=3, stm_mode="ROLLING")
    result = s.observe_sequence(observations=[{"strings": [x]} for x in "ABCDE"])
    assert len(result["auto_learned_patterns"]) >= 3
    assert result["final_stm_length"] == 2
    assert [r["sequence_position"] for r in result["results"]] == list(range(5))


def test_max_pattern_length_one_learns_single_event_regardless_of_mode():
    s = new_session(max_pattern_length=1, stm_mode="ROLLING")
    assert s.observe(["a", "b"])["auto_learned_pattern"].startswith("PTRN|")
    assert s.state.stm == []
    assert s.observe(["a"])["auto_learned_pattern"] is None


def test_observe_sequence_flags():
    s = new_session()
    result = s.observe_sequence(observations=[{"strings": ["a"], "unique_id": "mine"}, {"strings": ["b"]},
                                              {"strings": ["c"]}], learn_after_each=True, clear_stm_between=True)
    assert result["auto_learned_patterns"] == ["", "", ""]
    assert result["results"][0]["unique_id"] == "mine"
    assert result["results"][1]["unique_id"].startswith("seq-obs-")
    assert result["isolated"] is True and result["final_learned_pattern"] is None
    empty = s.observe_sequence(observations=[])
    assert (empty["observations_processed"], empty["results"], empty["final_learned_pattern"]) == (0, [], None)


def test_items_31_to_35_structure():
    s = new_session()
    learn_events(s, [["hello"], ["world"], ["test"]])
    observe_events(s, [["hello"], ["world"]])
    p = s.predictions()[0][0]
    assert (p["past"], p["present"], p["future"]) == ([], [["hello"], ["world"]], [["test"]])
    assert (p["missing"], p["extras"]) == ([[], []], [[], []])

    s = new_session(recall_threshold=0.3)
    learn_events(s, [["beginning"], ["middle"], ["end"]])
    observe_events(s, [["middle"], ["end"]])
    p = s.predictions()[0][0]
    assert (p["past"], p["present"], p["future"]) == ([["beginning"]], [["middle"], ["end"]], [])

    s = new_session()
    learn_events(s, [["a", "b"], ["c", "d"]])
    observe_events(s, [["a", "x"], ["c", "y"]])
    p = s.predictions()[0][0]
    assert (p["missing"], p["extras"]) == ([["b"], ["d"]], [["x"], ["y"]])


def test_item_36_alignment_holds_everywhere():
    s = new_session(recall_threshold=0.0)
    for pattern in ([["a", "b"], ["c"], ["d", "e"]], [["c"], ["a"]], [["q", "a"], ["b", "z"], ["c"]]):
        learn_events(s, pattern)
    observe_events(s, [["a"], ["c", "x"], ["e"]])
    predictions, _ = s.predictions()
    assert len(predictions) == 3
    for p in predictions:
        assert len(p["missing"]) == len(p["present"])
        assert len(p["extras"]) == 3
        assert not set(p["matches"]) & {x for e in p["missing"] for x in e}


def test_items_37_to_40_partial_and_middle():
    s = new_session()
    learn_events(s, [["begin", "start"], ["middle"], ["end"]])
    observe_events(s, [["begin"], ["middle"]])
    p = s.predictions()[0][0]
    assert len(p["present"]) == 2 and "start" in p["missing"][0] and p["future"] == [["end"]]

    s = new_session()
    learn_events(s, [["a", "a", "b", "b", "c"]])
    observe_events(s, [["a", "b"]])
    assert "c" in s.predictions()[0][0]["missing"][0]

    s = new_session()
    events = [[f"m{i}"] for i in range(10)]
    learn_events(s, events)
    observe_events(s, events[4:6])
    p = s.predictions()[0][0]
    assert len(p["past"]) >= 4 and len(p["present"]) == 2 and len(p["future"]) >= 4


@pytest.mark.parametrize(("threshold", "returned"), [(0.0, True), (0.1, True), (0.3, True), (0.5, True),
                                                    (0.7, True), (0.8, True), (0.9, False)])
def test_item_42_threshold_is_inclusive(threshold, returned):
    s = new_session(recall_threshold=threshold)
    learn_events(s, [["one"], ["two"], ["three"]])
    observe_events(s, [["one"], ["two"]])
    predictions, _ = s.predictions()
    assert bool(predictions) is returned
    assert all(p["similarity"] >= threshold for p in predictions)


def test_items_43_44_exact_replay_and_unrelated():
    s = new_session(recall_threshold=1.0)
    learn_events(s, [["p"], ["q"], ["r"]])
    observe_events(s, [["p"], ["q"], ["r"]])
    assert s.predictions()[0][0]["similarity"] == 1.0
    s = new_session(recall_threshold=0.0)
    learn_events(s, [["p"], ["q"]])
    observe_events(s, [["u"], ["v"]])
    predictions, _ = s.predictions()
    assert predictions and all(p["similarity"] == 0.0 and p["matches"] == [] for p in predictions)
    assert predictions[0]["bayesian_posterior"] == 0.0
    s.update_config({"recall_threshold": 0.1})
    assert s.predictions()[0] == []


def test_item_46_case_sensitive():
    s = new_session()
    learn_events(s, [["Hello", "World"]])
    observe_events(s, [["hello", "world"]])
    assert s.predictions()[0] == []


def test_item_47_bayesian_identities():
    s = new_session()
    learn_events(s, [["x"], ["y"], ["z"]])
    learn_events(s, [["x"], ["y"], ["z"]])
    learn_events(s, [["x"], ["w"]])
    learn_events(s, [["y"], ["k"], ["l"], ["m"]])
    observe_events(s, [["x"], ["y"]])
    predictions, _ = s.predictions()
    total = sum(p["bayesian_likelihood"] * p["bayesian_prior"] for p in predictions)
    for p in predictions:
        assert p["bayesian_likelihood"] == pytest.approx(p["similarity"], abs=1e-9)
        assert p["bayesian_posterior"] == pytest.approx(p["bayesian_likelihood"] * p["bayesian_prior"] / total,
                                                        abs=1e-9)
    assert sum(p["bayesian_prior"] for p in predictions) == pytest.approx(1.0, abs=1e-6)
    assert sum(p["bayesian_posterior"] for p in predictions) == pytest.approx(1.0, abs=1e-6)
    single = new_session()
    learn_events(single, [["x"], ["y"]])
    observe_events(single, [["x"], ["y"]])
    p = single.predictions()[0][0]
    assert p["bayesian_prior"] == p["bayesian_posterior"] == 1.0


def test_items_49_50_ranges_and_potential_identity():
    s = new_session()
    for pattern in ([["a"], ["b"], ["c"]], [["a"], ["c"], ["d"]], [["b", "e"], ["c"]], [["a"], ["b"]]):
        learn_events(s, pattern)
    observe_events(s, [["a"], ["b"]])
    predictions, _ = s.predictions()
    assert len(predictions) == 4
    for p in predictions:
        f = 0.0 if p["fragmentation"] == -1 else 1 / (p["fragmentation"] + 1)
        assert p["potential"] == pytest.approx((p["evidence"] + p["confidence"]) * p["snr"]
                                               + p["itfdf_similarity"] + f, abs=1e-4)
        assert 0 <= p["predictive_information"] <= 1
        for key in ("similarity", "bayesian_posterior", "bayesian_prior", "bayesian_likelihood", "confidence"):
            assert 0 <= p[key] <= 1
        assert p["entropy"] >= 0 and p["tfidf_score"] >= 0 and p["frequency"] >= 1


@pytest.mark.parametrize("algo", [a for a in RANK_SORT_ALGOS if not a.startswith("weighted_")])
def test_item_51_rank_sort_algo_orders_descending(algo):
    s = new_session(rank_sort_algo=algo)
    for pattern in ([["a"], ["b"], ["c"]], [["a"], ["x"], ["b"], ["y"]], [["b"], ["a"]], [["a", "b", "z"]]):
        learn_events(s, pattern)
    learn_events(s, [["a"], ["b"], ["c"]])
    observe_events(s, [["a"], ["b"]])
    predictions, _ = s.predictions()
    values = [p[algo] for p in predictions]
    assert values == sorted(values, reverse=True)


def test_ties_break_by_similarity_then_name():
    s = new_session(rank_sort_algo="frequency")
    names = [learn_events(s, [["a"], [f"t{i}"]]) for i in range(4)]
    learn_events(s, [["a"], ["b"], ["q"], ["r"]])
    observe_events(s, [["a"], ["b"]])
    predictions, _ = s.predictions()
    tied = [p["name"] for p in predictions if p["similarity"] == 0.5]
    assert tied == sorted(n.removeprefix("PTRN|") for n in names)
    assert predictions[0]["similarity"] > 0.5


@pytest.mark.parametrize("limit", [3, 5])
def test_item_52_max_predictions(limit):
    s = new_session(max_predictions=limit)
    for i in range(8):
        learn_events(s, [["a"], ["b"], [f"x{i}"]])
    observe_events(s, [["a"], ["b"]])
    assert len(s.predictions()[0]) == limit


def test_pruning_keeps_three_times_max_by_pre_potential():
    s = new_session(max_predictions=1)
    for i in range(5):
        learn_events(s, [["a"], ["b"], *[[f"x{i}_{j}"] for j in range(i)]])
    observe_events(s, [["a"], ["b"]])
    predictions, futures = s.predictions()
    assert len(predictions) == 1 and "_pre_potential" in predictions[0]
    assert sum(f["supporting_patterns"] for f in futures) == 2  # 3 kept, of which 2 have a future


def test_item_53_subset_discrimination():
    s = new_session()
    short = learn_events(s, [["A"], ["B"]])
    long = learn_events(s, [["A"], ["B"], ["C"], ["D"]])
    learn_events(s, [["P"], ["Q"]])
    observe_events(s, [["A"], ["B"]])
    predictions, _ = s.predictions()
    assert {p["name"] for p in predictions} == {short[5:], long[5:]}
    assert by_name(predictions, short)["similarity"] > by_name(predictions, long)["similarity"]


def test_item_54_fuzzy_anomalies():
    s = new_session(fuzzy_token_threshold=0.85)
    learn_events(s, [["apple", "banana", "cherry", "date", "elderberry"]])
    observe_events(s, [["apple", "bannana", "chery"]])
    p = s.predictions()[0][0]
    assert len(p["anomalies"]) >= 2
    assert all({"observed", "expected", "similarity"} <= set(a) and 0.85 <= a["similarity"] <= 1
               for a in p["anomalies"])
    off = new_session(fuzzy_token_threshold=0.0)
    learn_events(off, [["apple", "banana", "cherry"]])
    observe_events(off, [["apple", "bannana", "chery"]])
    assert off.predictions()[0][0]["anomalies"] == []


def test_item_55_character_mode():
    s = new_session(use_token_matching=False)
    learn_events(s, [["apple"], ["banana"], ["cherry"]])
    observe_events(s, [["apple"], ["banana"]])
    char_p = s.predictions()[0][0]
    token = new_session()
    learn_events(token, [["apple"], ["banana"], ["cherry"]])
    observe_events(token, [["apple"], ["banana"]])
    token_p = token.predictions()[0][0]
    assert char_p["similarity"] > 0.5 and abs(char_p["similarity"] - token_p["similarity"]) < 0.1
    assert char_p["name"] == token_p["name"]
    strict = new_session(use_token_matching=False, recall_threshold=0.9)
    learn_events(strict, [["t1"], ["t2"], ["t3"], ["t4"], ["t5"]])
    observe_events(strict, [["t1"], ["t2"]])
    assert strict.predictions()[0] == []


def test_item_56_single_symbol_path():
    s = new_session(recall_threshold=0.9)
    first = learn_events(s, [["w"], ["x"], ["y"]])
    learn_events(s, [["q", "w"], ["z"]])  # w is not the first symbol
    learn_events(s, [["k"], ["l"]])
    s.observe(["w"])
    predictions, _ = s.predictions()
    assert [p["name"] for p in predictions] == [first[5:]]
    p = predictions[0]
    assert p["similarity"] == 0.5  # below the threshold: ignored on this path
    assert (p["present"], p["future"]) == ([["w"]], [["x"], ["y"]])
    assert {"entropy", "tfidf_score", "bayesian_posterior", "confluence", "sequence"} <= set(p)


def test_item_57_determinism_and_candidate_order_invariance():
    s = new_session()
    for pattern in ([["a"], ["b"], ["c"]], [["b"], ["a"]], [["a", "b"]], [["c"], ["a"], ["b"]]):
        learn_events(s, pattern)
    observe_events(s, [["a"], ["b"]])
    first = s.predictions()
    assert s.predictions() == first
    kb = s.kato.backend.kb(s.kb_id)
    kb.patterns = dict(reversed(list(kb.patterns.items())))
    assert s.predictions() == first


def test_affinity_weighted_fields():
    kato = ReferenceKato()
    s = kato.session("w", {"affinity_emotive": "joy"})
    s.observe(["a"], emotives={"joy": 1.0})
    s.observe(["b"], emotives={"joy": 1.0})
    s.learn()
    learn_events(s, [["a"], ["c"]])
    observe_events(s, [["a"], ["b"]])
    predictions, _ = s.predictions()
    w_a = 1.0 / 2 + 0.01  # affinity 1.0 over symbols:freq 2
    w_b = 1.0 / 1 + 0.01
    p = next(p for p in predictions if p["sequence"] == [["a"], ["b"]])
    assert p["weighted_similarity"] == pytest.approx(2 * (w_a + w_b) / ((w_a + w_b) * 2), abs=1e-12)
    q = next(p for p in predictions if p["sequence"] == [["a"], ["c"]])
    assert q["weighted_similarity"] == pytest.approx(2 * w_a / ((w_a + w_b) + w_a), abs=1e-12)
    assert q["weighted_evidence"] == pytest.approx(1.0, abs=1e-12)
    assert q["weighted_snr"] == pytest.approx(w_a / (w_a + w_b), abs=1e-12)
    assert q["potential"] == pytest.approx((q["weighted_evidence"] + q["weighted_confidence"]) * q["weighted_snr"]
                                           + q["itfdf_similarity"] + 1.0, abs=1e-12)


def test_weighted_rank_without_weighting_treats_null_as_lowest():
    s = new_session(rank_sort_algo="weighted_similarity")
    learn_events(s, [["a"], ["b"]])
    learn_events(s, [["a"], ["b"], ["c"]])
    observe_events(s, [["a"], ["b"]])
    predictions, _ = s.predictions()
    assert [p["similarity"] for p in predictions] == [1.0, 0.8]
