"""Corpus-dependent prediction metrics, pruning, ranking and future potentials (spec §2.2, §2.5–§2.7).

Runs on the merged candidate set: the per-candidate fields come from ``schema.rules.matching`` (or the shard
kernels, which produce the same fields), the statistics from Redis in one round trip.

``schema.rules.scoring.score`` is the vectorised implementation used on every prediction; ``score_reference``
(with the helpers around it) is the readable one-candidate-at-a-time version it is tested against
(``tests/unit/test_corpus_metrics_fast.py``) and falls back to for inputs it does not handle.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from operator import add
from typing import Any

from schema.events import flatten
from schema.learning import average_emotives
from schema.rules.matching import CandidateMatch, fragmentation_term

UNSEEN_SYMBOL_PROBABILITY = 1e-10


@dataclass(frozen=True)
class PatternIntrinsics:
    """Whole-pattern values precomputed by finalize-training."""

    entropy: float
    normalized_entropy: float
    global_normalized_entropy: float
    tf_vector: dict[str, float]


@dataclass
class CorpusStats:
    """What the metrics read from a KB's statistics. Mappings may hold only the keys a query needs."""

    total_symbols: int = 0
    total_unique_patterns: int = 0
    total_pattern_frequencies: int = 0
    pmf: Mapping[str, int] = field(default_factory=dict)
    symbol_freq: Mapping[str, int] = field(default_factory=dict)
    frequencies: Mapping[str, int] = field(default_factory=dict)
    emotives: Mapping[str, list[dict[str, float]]] = field(default_factory=dict)
    intrinsics: Mapping[str, PatternIntrinsics] = field(default_factory=dict)
    affinity: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()  # patterns learned after the moment these statistics are as of (not candidates)

    def frequency(self, name: str) -> int:
        """Redis frequency, floored to 1 for a stored pattern (a missing key is treated as data loss)."""
        return max(1, int(self.frequencies.get(name, 0)))


@dataclass
class RankingOptions:
    max_predictions: int = 100
    rank_sort_algo: str = "potential"
    affinity_emotive: str | None = None


def shannon_entropy(symbols: Sequence[str]) -> float:
    n = len(symbols)
    if n == 0:
        return 0.0
    # KATO subtracts p·log2(p) from 0.0 (math.log(p, 2) differs from log2 in the last bit)
    return float(sum(-(p * math.log2(p)) for p in (c / n for c in Counter(symbols).values()) if p > 0))


def entropy_term(p: float, base: int) -> float:
    return -p * math.log(p, base) if p > 0 and base > 1 else 0.0


def normalized_entropy(symbols: Sequence[str], total_symbols: int) -> float:
    n = len(symbols)
    if n == 0:
        return 0.0
    return float(sum(entropy_term(c / n, total_symbols) for c in Counter(symbols).values()))


def global_normalized_entropy(symbols: Sequence[str], probability: Mapping[str, float], total_symbols: int) -> float:
    return float(sum(entropy_term(probability.get(s, 0.0), total_symbols) for s in dict.fromkeys(symbols)))


def conditional_probability(symbols: Sequence[str], probability: Mapping[str, float]) -> float:
    """Product of the symbol probabilities, computed in log10 space as KATO does (1e-10 for unseen)."""
    logs = []
    for s in symbols:
        p = probability.get(s, UNSEEN_SYMBOL_PROBABILITY)
        logs.append(math.log10(p if p > 0 else UNSEEN_SYMBOL_PROBABILITY))
    return 10 ** reduce(add, logs) if logs else 0.0


def tf_vector(symbols: Sequence[str]) -> dict[str, float]:
    n = len(symbols)
    return {s: c / n for s, c in Counter(symbols).items()} if n else {}


def tfidf_score(tf: Mapping[str, float], probability: Mapping[str, float], total_unique_patterns: int) -> float:
    if not tf or total_unique_patterns == 0:
        return 0.0
    total = 0.0
    for symbol, weight in tf.items():
        n_s = max(1, int(probability[symbol] * total_unique_patterns)) if symbol in probability else 1
        total += weight * (math.log2(total_unique_patterns / n_s) + 1)
    return float(total / len(tf))


def itfdf_distance(state: Sequence[str], present: Sequence[str], probability: Mapping[str, float]) -> float:
    """Cosine distance of probability-weighted count vectors over the union vocabulary."""
    state_counts, present_counts = Counter(state), Counter(present)
    vocabulary = list(dict.fromkeys([*present, *state]))
    v_state = [probability.get(s, 0.0) * state_counts.get(s, 0) for s in vocabulary]
    v_present = [probability.get(s, 0.0) * present_counts.get(s, 0) for s in vocabulary]
    if all(v == 0 for v in v_state) or all(v == 0 for v in v_present):
        return 1.0
    dot = sum(x * y for x, y in zip(v_state, v_present))
    norm_s = math.sqrt(sum(x * x for x in v_state))
    norm_p = math.sqrt(sum(y * y for y in v_present))
    if norm_s == 0 or norm_p == 0:
        return 1.0
    distance = float(1 - dot / (norm_s * norm_p))
    return 1.0 if math.isnan(distance) else distance


def future_key(future: Sequence[Sequence[str]]) -> str:
    normalised = [sorted(event) for event in future]
    return hashlib.sha1(json.dumps(normalised, sort_keys=True).encode()).hexdigest()


def affinity_weights(symbols: Sequence[str], stats: CorpusStats, emotive: str) -> dict[str, float]:
    """w(t) = |affinity_t[emotive]| / symbols:freq(t) + 0.01, or 0.01 when either is 0 (spec §2.6)."""
    weights: dict[str, float] = {}
    for s in dict.fromkeys(symbols):
        freq = stats.symbol_freq.get(s, 0)
        affinity = stats.affinity.get(s, {}).get(emotive, 0.0)
        weights[s] = abs(affinity) / freq + 0.01 if freq and affinity else 0.01
    return weights


def _weighted_fields(c: CandidateMatch, state: Sequence[str], weights: Mapping[str, float]) -> dict[str, Any]:
    def total(symbols: Sequence[str]) -> float:
        return sum(weights.get(s, 0.0) for s in symbols)

    w_matches = total(c.matches)
    w_pattern = total(flatten(c.events))
    w_present = total(c.present_symbols)
    w_extras = total(flatten(c.extras))
    denominator = total(state) + w_pattern
    return {
        "weighted_similarity": 2 * w_matches / denominator if denominator else None,
        "weighted_evidence": w_matches / w_pattern if w_pattern else 0.0,
        "weighted_confidence": w_matches / w_present if w_present else 0.0,
        "weighted_snr": w_matches / (w_matches + w_extras) if (w_matches + w_extras) else 0.0,
    }


def candidate_fields(c: CandidateMatch, frequency: int, emotives: dict[str, float]) -> dict[str, Any]:
    """The leading fields of a prediction, in KATO's order: what the candidate itself carries."""
    return {
        "type": "prototypical", "name": c.name, "frequency": frequency, "sequence": c.events,
        "matches": c.matches, "past": c.past, "present": c.present, "future": c.future, "missing": c.missing,
        "extras": c.extras, "anomalies": c.anomalies, "similarity": c.similarity, "evidence": c.evidence,
        "confidence": c.confidence, "fragmentation": c.fragmentation, "snr": c.snr, "emotives": emotives,
    }


def prune(candidates: list[CandidateMatch], max_predictions: int, total: int | None = None
          ) -> tuple[list[CandidateMatch], bool]:
    """Keep the 3·max_predictions candidates with the largest pre-potential (ties: similarity, name).

    ``total`` is the size of the whole candidate set when ``candidates`` are already local tops of shards.
    """
    limit = 3 * max_predictions
    pruned = (len(candidates) if total is None else total) > limit
    if len(candidates) <= limit:
        return candidates, pruned
    ordered = sorted(candidates, key=lambda c: (-c.pre_potential, -c.similarity, c.name))
    return ordered[:limit], pruned


def rank_key(algo: str):
    def key(prediction: Mapping[str, Any]):
        value = prediction.get(algo)
        value = -math.inf if value is None else value
        return (-value, -prediction["similarity"], prediction["name"])
    return key


def score_reference(candidates: list[CandidateMatch], state_events: Sequence[Sequence[str]], stats: CorpusStats,
                     options: RankingOptions, weight_symbols: Sequence[str] | None = None,
                     total_candidates: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The readable reference of :func:`score`: one candidate at a time, straight from the formulas.

    :func:`score` must return exactly what this returns (``tests/unit/test_corpus_metrics_fast.py``);
    it is also the fallback for inputs the fast path does not handle (NaN pre-potentials, max_predictions < 1,
    a ``rank_sort_algo`` that is not a numeric prediction field).
    """
    if not candidates:
        return [], []
    kept, pruned = prune(candidates, options.max_predictions, total_candidates)
    kept = sorted(kept, key=lambda c: c.name)
    state = flatten(state_events)
    probability = _symbol_probabilities(kept, stats)

    frequencies = [stats.frequency(c.name) for c in kept]
    sum_freq = sum(frequencies)
    sum_sim_prior = sum(c.similarity * (f / sum_freq) for c, f in zip(kept, frequencies)) if sum_freq else 0.0
    weights = (affinity_weights(weight_symbols if weight_symbols is not None else state, stats,
                                options.affinity_emotive) if options.affinity_emotive else None)

    predictions: list[dict[str, Any]] = []
    for c, freq in zip(kept, frequencies):
        prediction = _reference_prediction(c, freq, state, probability, stats, sum_freq, sum_sim_prior)
        if pruned:
            prediction["_pre_potential"] = c.pre_potential
        if weights is not None:
            prediction.update(_weighted_fields(c, state, weights))
        predictions.append(prediction)

    future_potentials = _future_potentials(predictions)
    _set_potentials(predictions, future_potentials, weighted=weights is not None)
    predictions.sort(key=rank_key(options.rank_sort_algo))
    return predictions[:options.max_predictions], future_potentials


def _symbol_probabilities(kept: list[CandidateMatch], stats: CorpusStats) -> dict[str, float]:
    """P(s) = pmf(s) / TUP for the symbols of matches and missing, in first-occurrence order."""
    tup = stats.total_unique_patterns
    probability: dict[str, float] = {}
    for c in kept:
        for s in [*c.matches, *flatten(c.missing)]:
            if s not in probability:
                probability[s] = stats.pmf.get(s, 0) / tup if tup > 0 else 0.0
    return probability


def _present_intrinsics(present: Sequence[str], probability: Mapping[str, float],
                        total_symbols: int) -> PatternIntrinsics:
    """The entropies and tf vector of the present symbols: what finalize-training's values stand in for."""
    return PatternIntrinsics(
        entropy=shannon_entropy(present),
        normalized_entropy=normalized_entropy(present, total_symbols),
        global_normalized_entropy=global_normalized_entropy(present, probability, total_symbols),
        tf_vector=tf_vector(present),
    )


def _reference_prediction(c: CandidateMatch, freq: int, state: Sequence[str], probability: Mapping[str, float],
                          stats: CorpusStats, sum_freq: int, sum_sim_prior: float) -> dict[str, Any]:
    """One candidate's prediction dict, without the affinity-weighted fields, potential and predictive
    information (they need every candidate: see :func:`_set_potentials`)."""
    present = c.present_symbols
    intrinsics = stats.intrinsics.get(c.name)
    if intrinsics is None:
        intrinsics = _present_intrinsics(present, probability, stats.total_symbols)
    p_e_h = freq / stats.total_pattern_frequencies if stats.total_pattern_frequencies > 0 else 0.0
    confluence = p_e_h * (1 - conditional_probability(present, probability)) if present else 0.0
    itfdf = 1 - itfdf_distance(state, present, probability) * freq / sum_freq if sum_freq else 0.0
    prior = freq / sum_freq if sum_freq else 0.0
    prediction = candidate_fields(c, freq, average_emotives(stats.emotives.get(c.name, [])))
    prediction.update({
        "entropy": float(intrinsics.entropy),
        "normalized_entropy": float(intrinsics.normalized_entropy),
        "global_normalized_entropy": float(intrinsics.global_normalized_entropy),
        "confluence": float(confluence),
        "itfdf_similarity": float(itfdf),
        "tfidf_score": tfidf_score(intrinsics.tf_vector, probability, stats.total_unique_patterns),
        "pattern_probability": prior,
        "weighted_strength": c.similarity * prior,
        "predictive_information": 0.0,
        "bayesian_prior": prior,
        "bayesian_likelihood": c.similarity,
        "bayesian_posterior": (c.similarity * prior / sum_sim_prior) if sum_sim_prior > 0 else 0.0,
        "potential": 0.0,
        "weighted_similarity": None,
        "weighted_evidence": None,
        "weighted_confidence": None,
        "weighted_snr": None,
    })
    return prediction


def _set_potentials(predictions: list[dict[str, Any]], future_potentials: list[dict[str, Any]],
                    weighted: bool) -> None:
    """Fill in predictive information (a prediction's share of its future's aggregate potential) and potential,
    then drop the future potentials' internal keys."""
    aggregate = {fp["_key"]: fp["aggregate_potential"] for fp in future_potentials}
    for p in predictions:
        if p["future"]:
            share = aggregate.get(future_key(p["future"]), 0.0)
            p["predictive_information"] = p["weighted_strength"] / share if share > 0 else 0.0
        if weighted:
            evidence, confidence, snr = p["weighted_evidence"], p["weighted_confidence"], p["weighted_snr"]
        else:
            evidence, confidence, snr = p["evidence"], p["confidence"], p["snr"]
        p["potential"] = float((evidence + confidence) * snr + p["itfdf_similarity"]
                               + fragmentation_term(p["fragmentation"]))
    for fp in future_potentials:
        del fp["_key"]


def _future_potentials(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for p in predictions:
        if not p["future"]:
            continue
        key = future_key(p["future"])
        group = groups.setdefault(key, {"future": p["future"], "aggregate_potential": 0.0,
                                        "supporting_patterns": 0, "total_weighted_frequency": 0.0, "_key": key})
        group["total_weighted_frequency"] += p["frequency"] * p["similarity"]
        group["supporting_patterns"] += 1
    total = sum(g["total_weighted_frequency"] for g in groups.values())
    for g in groups.values():
        g["aggregate_potential"] = g["total_weighted_frequency"] / total if total > 0 else 0.0
    return sorted(groups.values(), key=lambda g: (-g["aggregate_potential"], g["_key"]))


def pattern_intrinsics(events: Sequence[Sequence[str]], pmf: Mapping[str, int], total_symbols: int,
                       total_unique_patterns: int) -> PatternIntrinsics:
    """finalize-training's whole-pattern values (spec §3.7)."""
    symbols = flatten(events)
    probability = {s: (pmf.get(s, 0) / total_unique_patterns if total_unique_patterns > 0 else 0.0)
                   for s in symbols}
    return PatternIntrinsics(
        entropy=shannon_entropy(symbols),
        normalized_entropy=normalized_entropy(symbols, total_symbols),
        global_normalized_entropy=global_normalized_entropy(symbols, probability, total_symbols),
        tf_vector=tf_vector(symbols),
    )
