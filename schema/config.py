"""Session configuration (spec §3.3): keys, server defaults, validation and the effective view.

Validation mirrors KATO's ``POST /sessions/{id}/config``: every invalid key yields one message in
``validation_errors``; unknown keys are ignored. Where KATO leaves a key unvalidated but a wrong *type* would
only crash later, we refuse the type (a 400 instead of KATO's eventual 500).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schema.errors import ConfigValidationError, SettingsError
from schema.settings import env_values

RANK_SORT_ALGOS: tuple[str, ...] = (
    "potential", "similarity", "evidence", "confidence", "snr", "fragmentation", "frequency",
    "normalized_entropy", "global_normalized_entropy", "itfdf_similarity", "confluence",
    "predictive_information", "bayesian_posterior", "bayesian_prior", "bayesian_likelihood", "tfidf_score",
    "weighted_similarity", "weighted_evidence", "weighted_confidence", "weighted_snr",
)
INDEXER_TYPES: tuple[str, ...] = ("VI", "LSH", "ANNOY", "FAISS")
STM_MODES: tuple[str, ...] = ("CLEAR", "ROLLING")
FILTER_STAGES: tuple[str, ...] = ("minhash", "length", "jaccard", "bloom", "rapidfuzz")

# Keys of the effective configuration, in KATO's order. The two optional ones appear only when set.
EFFECTIVE_KEYS: tuple[str, ...] = (
    "max_pattern_length", "persistence", "recall_threshold", "indexer_type", "max_predictions",
    "sort_symbols", "process_predictions", "use_token_matching", "fuzzy_token_threshold", "stm_mode",
    "rank_sort_algo", "affinity_emotive", "filter_pipeline", "length_min_ratio", "length_max_ratio",
    "jaccard_threshold", "jaccard_min_overlap", "minhash_threshold", "minhash_bands", "minhash_rows",
    "minhash_num_hashes", "bloom_false_positive_rate", "max_candidates_per_stage", "enable_filter_metrics",
)
OPTIONAL_KEYS: frozenset[str] = frozenset({"fuzzy_token_threshold", "affinity_emotive"})
PROTECTED_KEYS: frozenset[str] = frozenset({"session_id", "node_id", "version", "created_at", "updated_at"})
# Server defaults KATO reads from its environment, under the upper-cased key (``RECALL_THRESHOLD``, ...).
ENV_KEYS: frozenset[str] = frozenset({"max_pattern_length", "persistence", "recall_threshold", "stm_mode",
                                      "max_predictions", "rank_sort_algo"})


@dataclass(frozen=True)
class ServerDefaults:
    """Server-wide defaults (KATO's environment settings)."""

    max_pattern_length: int = 0
    persistence: int = 5
    recall_threshold: float = 0.1
    stm_mode: str = "CLEAR"
    indexer_type: str = "VI"
    max_predictions: int = 100
    sort_symbols: bool = True
    process_predictions: bool = True
    use_token_matching: bool = True
    rank_sort_algo: str = "potential"
    filter_pipeline: tuple[str, ...] = ()
    length_min_ratio: float = 0.5
    length_max_ratio: float = 2.0
    jaccard_threshold: float = 0.3
    jaccard_min_overlap: int = 2
    minhash_threshold: float = 0.7
    minhash_bands: int = 20
    minhash_rows: int = 5
    minhash_num_hashes: int = 100
    bloom_false_positive_rate: float = 0.01
    max_candidates_per_stage: int = 100000
    enable_filter_metrics: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerDefaults:
        """KATO's own variables (``RECALL_THRESHOLD``, ``MAX_PREDICTIONS``, ...), typed and validated like a
        session-config update; an unknown ``STM_MODE`` becomes ``CLEAR`` as in KATO."""
        values = env_values(cls, env, lambda name: name.upper() if name in ENV_KEYS else None)
        try:
            validate_update({k: v for k, v in values.items() if k != "stm_mode"})
        except ConfigValidationError as error:
            raise SettingsError(f"server defaults: {error.errors}") from error
        if "stm_mode" in values:
            values["stm_mode"] = normalise_stm_mode(values["stm_mode"])
        return cls(**values)


def normalise_stm_mode(value: Any) -> str:
    return value if value in STM_MODES else "CLEAR"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int_range(lo: int, hi: int | None):
    def check(v: Any) -> str | None:
        if not _is_int(v):
            return "must be an integer"
        if v < lo or (hi is not None and v > hi):
            return f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}"
        return None
    return check


def _number_range(lo: float, hi: float | None):
    def check(v: Any) -> str | None:
        if not _is_number(v):
            return "must be a number"
        if v < lo or (hi is not None and v > hi):
            return f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}"
        return None
    return check


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be a boolean"


def _one_of(options: tuple[str, ...]):
    def check(v: Any) -> str | None:
        return None if v in options else f"must be one of {list(options)}"
    return check


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _pipeline(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        return "must be a list of stage names"
    unknown = [s for s in v if s not in FILTER_STAGES]
    return f"unknown stages {unknown}; valid stages are {list(FILTER_STAGES)}" if unknown else None


def _anything(_v: Any) -> str | None:
    return None


_VALIDATORS = {
    "max_pattern_length": _int_range(0, None),
    "persistence": _int_range(1, 100),
    "recall_threshold": _number_range(0.0, 1.0),
    "stm_mode": _string,
    "indexer_type": _one_of(INDEXER_TYPES),
    "max_predictions": _int_range(1, 10000),
    "sort_symbols": _anything,
    "process_predictions": _bool,
    "use_token_matching": _bool,
    "fuzzy_token_threshold": _number_range(0.0, 1.0),
    "rank_sort_algo": _one_of(RANK_SORT_ALGOS),
    "affinity_emotive": _string,
    "filter_pipeline": _pipeline,
    "length_min_ratio": _number_range(0.0, 1.0),
    "length_max_ratio": _number_range(1.0, None),
    "jaccard_threshold": _number_range(0.0, 1.0),
    "jaccard_min_overlap": _int_range(1, None),
    "minhash_threshold": _number_range(0.0, 1.0),
    "minhash_bands": _int_range(1, 100),
    "minhash_rows": _int_range(1, 20),
    "minhash_num_hashes": _int_range(10, 256),
    "bloom_false_positive_rate": _number_range(0.0001, 0.1),
    "max_candidates_per_stage": _int_range(100, None),
    "enable_filter_metrics": _bool,
    "sort": _bool,
}


def validate_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a configuration update and return the accepted values (unknown keys dropped).

    ``None`` resets a key to the server default. Applies KATO's normalisations: unknown ``stm_mode`` becomes
    ``CLEAR``; ``use_token_matching`` without ``sort_symbols`` also sets ``sort_symbols`` (spec §4.6).
    """
    errors: dict[str, str] = {}
    accepted: dict[str, Any] = {}
    for key, value in update.items():
        if key in PROTECTED_KEYS or key not in _VALIDATORS:
            continue
        if value is None:
            accepted[key] = None
            continue
        message = _VALIDATORS[key](value)
        if message is not None:
            errors[key] = f"{key} {message} (got {value!r})"
            continue
        accepted[key] = value
    if errors:
        raise ConfigValidationError(errors)
    accepted.pop("sort", None)
    if accepted.get("stm_mode") is not None:
        accepted["stm_mode"] = normalise_stm_mode(accepted["stm_mode"])
    if "use_token_matching" in accepted and "sort_symbols" not in update:
        accepted["sort_symbols"] = accepted["use_token_matching"]
    return accepted


def creation_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Config given at session creation: applied when valid, silently dropped when not (KATO's rule)."""
    if not config:
        return {}
    try:
        return {k: v for k, v in validate_update(config).items() if v is not None}
    except ConfigValidationError:
        return {}


def effective_config(session_values: Mapping[str, Any], defaults: ServerDefaults) -> dict[str, Any]:
    """Session value where set, else the server default, for every key of ``EFFECTIVE_KEYS``."""
    out: dict[str, Any] = {}
    for key in EFFECTIVE_KEYS:
        value = session_values.get(key)
        if value is None:
            if key in OPTIONAL_KEYS:
                continue
            value = getattr(defaults, key)
            if isinstance(value, tuple):
                value = list(value)
        out[key] = value
    return out


def filter_param(config: Mapping[str, Any], key: str, defaults: ServerDefaults) -> Any:
    """KATO reads filter parameters as ``value or default``: a configured 0 becomes the default (Q9)."""
    return config.get(key) or getattr(defaults, key)
