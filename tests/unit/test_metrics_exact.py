"""Every corpus metric of spec §2.5 on a corpus small enough to compute by hand."""

import math

import pytest

from tests.unit.kato_helpers import by_name, learn_events, new_session, observe_events


@pytest.fixture
def predictions():
    session = new_session()
    a = learn_events(session, [["a"], ["b"], ["c"]])
    b = learn_events(session, [["a"], ["d"]])
    observe_events(session, [["a"], ["b"]])
    preds, futures = session.predictions()
    return by_name(preds, a), by_name(preds, b), preds, futures


def test_per_candidate_fields(predictions):
    a, b, _, _ = predictions
    assert (a["similarity"], a["evidence"], a["confidence"], a["snr"]) == (0.8, 2 / 3, 1.0, 1.0)
    assert (b["similarity"], b["evidence"], b["confidence"]) == (0.5, 0.5, 1.0)
    assert b["snr"] == pytest.approx(1 / 3, abs=1e-15)
    assert b["extras"] == [[], ["b"]]
    assert a["future"] == [["c"]] and b["future"] == [["d"]]


def test_entropies_present_only(predictions):
    a, b, _, _ = predictions
    assert a["entropy"] == pytest.approx(1.0, abs=1e-12)
    assert a["normalized_entropy"] == pytest.approx(2 * 0.5 * -math.log(0.5, 4), abs=1e-12)
    assert a["global_normalized_entropy"] == pytest.approx(-0.5 * math.log(0.5, 4), abs=1e-12)
    assert (b["entropy"], b["normalized_entropy"], b["global_normalized_entropy"]) == (0.0, 0.0, 0.0)


def test_confluence_itfdf_tfidf(predictions):
    a, b, _, _ = predictions
    assert a["confluence"] == pytest.approx(0.5 * (1 - 1.0 * 0.5), abs=1e-12)
    assert b["confluence"] == pytest.approx(0.0, abs=1e-12)
    assert a["itfdf_similarity"] == pytest.approx(1.0, abs=1e-12)
    distance = 1 - 1 / math.sqrt(1.25)
    assert b["itfdf_similarity"] == pytest.approx(1 - distance * 1 / 2, abs=1e-12)
    assert a["tfidf_score"] == pytest.approx((0.5 * 1 + 0.5 * 2) / 2, abs=1e-12)
    assert b["tfidf_score"] == pytest.approx(1.0, abs=1e-12)


def test_bayesian_fields_and_predictive_information(predictions):
    a, b, preds, _ = predictions
    assert a["bayesian_prior"] == b["bayesian_prior"] == 0.5
    assert a["bayesian_likelihood"] == a["similarity"]
    assert a["bayesian_posterior"] == pytest.approx(0.4 / 0.65, abs=1e-12)
    assert b["bayesian_posterior"] == pytest.approx(0.25 / 0.65, abs=1e-12)
    assert sum(p["bayesian_posterior"] for p in preds) == pytest.approx(1.0, abs=1e-12)
    assert a["predictive_information"] == pytest.approx(0.65, abs=1e-12)
    assert b["predictive_information"] == pytest.approx(0.65, abs=1e-12)


def test_potential_and_order(predictions):
    a, b, preds, _ = predictions
    assert a["potential"] == pytest.approx((2 / 3 + 1) * 1 + 1 + 1, abs=1e-12)
    assert b["potential"] == pytest.approx(1.5 / 3 + b["itfdf_similarity"] + 1, abs=1e-12)
    assert [p["name"] for p in preds] == [a["name"], b["name"]]
    for p in preds:
        f = 1 / (p["fragmentation"] + 1)
        assert p["potential"] == pytest.approx((p["evidence"] + p["confidence"]) * p["snr"]
                                               + p["itfdf_similarity"] + f, abs=1e-12)


def test_future_potentials(predictions):
    _, _, _, futures = predictions
    assert futures == [
        {"future": [["c"]], "aggregate_potential": pytest.approx(0.8 / 1.3, abs=1e-12),
         "supporting_patterns": 1, "total_weighted_frequency": pytest.approx(0.8, abs=1e-12)},
        {"future": [["d"]], "aggregate_potential": pytest.approx(0.5 / 1.3, abs=1e-12),
         "supporting_patterns": 1, "total_weighted_frequency": pytest.approx(0.5, abs=1e-12)},
    ]


def test_json_number_types(predictions):
    a, _, _, _ = predictions
    assert type(a["frequency"]) is int
    for key in ("similarity", "evidence", "confidence", "snr", "fragmentation", "entropy", "normalized_entropy",
                "global_normalized_entropy", "confluence", "itfdf_similarity", "tfidf_score", "potential",
                "predictive_information", "bayesian_prior", "bayesian_posterior", "bayesian_likelihood"):
        assert type(a[key]) is float, key
    assert a["weighted_similarity"] is None and a["type"] == "prototypical"
    assert "_pre_potential" not in a


def test_finalize_training_switches_to_whole_pattern_values():
    session = new_session()
    name = learn_events(session, [["a"], ["b"], ["c"], ["c"]])
    observe_events(session, [["a"], ["b"]])
    before = session.predictions()[0][0]
    assert before["entropy"] == pytest.approx(1.0, abs=1e-12)
    session.kato.backend.kb(session.kb_id).finalize_training()
    after = by_name(session.predictions()[0], name)
    assert after["entropy"] == pytest.approx(-(0.25 * math.log2(0.25)) * 2 - 0.5 * math.log2(0.5), abs=1e-12)
    # tf over the whole pattern; symbols outside matches/missing count as n_s = 1.
    expected_tfidf = (0.25 * 1 + 0.25 * 1 + 0.5 * 1) / 3
    assert after["tfidf_score"] == pytest.approx(expected_tfidf, abs=1e-12)


def test_frequency_counts_relearns_and_priors_follow():
    session = new_session()
    for _ in range(3):
        x = learn_events(session, [["x"], ["y"]])
    learn_events(session, [["x"], ["z"]])
    observe_events(session, [["x"], ["y"]])
    preds, _ = session.predictions()
    assert len(preds) == 2
    top = by_name(preds, x)
    assert top["frequency"] == 3
    assert top["bayesian_prior"] == pytest.approx(0.75)
    # total_pattern_frequencies grows only with new patterns, so confluence's prior is 3/2 here.
    assert top["confluence"] == pytest.approx(1.5 * (1 - 1.0 * 0.5), abs=1e-12)


def test_entropy_to_the_last_bit_uses_log2():
    """KATO sums -(p·log2 p); math.log(p, 2) would read 0.9852281360342516 here."""
    from schema.rules.metrics import shannon_entropy

    assert shannon_entropy(["a"] * 3 + ["b"] * 4) == 0.9852281360342515
