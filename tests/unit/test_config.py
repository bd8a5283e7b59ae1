import pytest

from schema.config import (
    EFFECTIVE_KEYS,
    ConfigValidationError,
    ServerDefaults,
    creation_config,
    effective_config,
    filter_param,
    validate_update,
)


@pytest.mark.parametrize("update", [
    {"recall_threshold": -0.1}, {"recall_threshold": 1.1}, {"recall_threshold": "invalid"},
    {"max_pattern_length": -1}, {"persistence": 0}, {"persistence": 101}, {"max_predictions": 0},
    {"max_predictions": 10001}, {"indexer_type": "INVALID_TYPE"}, {"rank_sort_algo": "invalid_algorithm"},
    {"process_predictions": "yes"}, {"use_token_matching": 1}, {"sort": "x"},
    {"filter_pipeline": ["minhash", "nope"]}, {"filter_pipeline": "minhash"},
    {"fuzzy_token_threshold": "high"}, {"max_predictions": 2.5}, {"recall_threshold": True},
])
def test_invalid_values_are_rejected_per_key(update):
    with pytest.raises(ConfigValidationError) as info:
        validate_update(update)
    key = next(iter(update))
    assert set(info.value.errors) == {key}
    detail = info.value.detail
    assert detail["error"] == "Configuration validation failed"
    assert key in detail["validation_errors"][key]


@pytest.mark.parametrize("update", [
    {"recall_threshold": 0.0}, {"recall_threshold": 1.0}, {"recall_threshold": 1}, {"persistence": 1},
    {"persistence": 100}, {"max_predictions": 1}, {"max_predictions": 10000}, {"max_pattern_length": 0},
    {"indexer_type": "FAISS"}, {"rank_sort_algo": "tfidf_score"}, {"filter_pipeline": []},
    {"filter_pipeline": ["minhash", "jaccard"]},
])
def test_boundary_values_are_accepted(update):
    assert validate_update(update) == update


def test_several_errors_are_all_reported():
    with pytest.raises(ConfigValidationError) as info:
        validate_update({"persistence": 0, "max_predictions": 0, "recall_threshold": 0.5})
    assert set(info.value.errors) == {"persistence", "max_predictions"}


def test_unknown_and_protected_keys_are_ignored():
    assert validate_update({"bogus": 1, "session_id": "x", "node_id": "y", "recall_threshold": 0.3}) == {
        "recall_threshold": 0.3}


def test_unknown_stm_mode_is_normalised_to_clear():
    assert validate_update({"stm_mode": "SIDEWAYS"}) == {"stm_mode": "CLEAR"}
    assert validate_update({"stm_mode": "ROLLING"}) == {"stm_mode": "ROLLING"}


def test_token_matching_toggles_sort_symbols_unless_given():
    assert validate_update({"use_token_matching": False}) == {"use_token_matching": False, "sort_symbols": False}
    assert validate_update({"use_token_matching": False, "sort_symbols": True}) == {
        "use_token_matching": False, "sort_symbols": True}


def test_effective_config_lists_every_key_with_defaults():
    config = effective_config({}, ServerDefaults())
    assert list(config) == [k for k in EFFECTIVE_KEYS if k not in ("fuzzy_token_threshold", "affinity_emotive")]
    assert config["recall_threshold"] == 0.1
    assert config["max_predictions"] == 100
    assert config["filter_pipeline"] == []
    assert config["stm_mode"] == "CLEAR"


def test_effective_config_shows_optional_keys_when_set():
    config = effective_config({"fuzzy_token_threshold": 0.85, "affinity_emotive": "joy", "max_predictions": 3},
                              ServerDefaults())
    assert config["fuzzy_token_threshold"] == 0.85
    assert config["affinity_emotive"] == "joy"
    assert config["max_predictions"] == 3


def test_invalid_creation_config_is_dropped_whole():
    assert creation_config({"recall_threshold": 5, "max_predictions": 3}) == {}
    assert creation_config({"recall_threshold": 0.5}) == {"recall_threshold": 0.5}


def test_filter_params_read_as_value_or_default():
    defaults = ServerDefaults()
    assert filter_param({"jaccard_threshold": 0.0}, "jaccard_threshold", defaults) == 0.3
    assert filter_param({"jaccard_threshold": 0.6}, "jaccard_threshold", defaults) == 0.6


def test_server_defaults_from_environment():
    d = ServerDefaults.from_env({"RECALL_THRESHOLD": "0.3", "PERSISTENCE": "7", "STM_MODE": "odd"})
    assert (d.recall_threshold, d.persistence, d.stm_mode) == (0.3, 7, "CLEAR")
