"""Corpus-dependent prediction metrics, pruning, ranking and future potentials (spec §2.2, §2.5–§2.7).

Runs on the merged candidate set: the per-candidate fields come from ``actors.matching`` (or the shard
kernels, which produce the same fields), the statistics from Redis in one round trip.

``score`` is the vectorised implementation used on every prediction; ``_score_reference`` (with the helpers
above it) is the readable one-candidate-at-a-time version it is tested against
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
from itertools import chain, repeat
from operator import add, attrgetter, mul, neg
from typing import Any

import numpy as np

from actors.matching import CandidateMatch, fragmentation_term
from schema.events import flatten

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

    def frequency(self, name: str) -> int:
        """Redis frequency, floored to 1 for a stored pattern (a missing key is treated as data loss)."""
        return max(1, int(self.frequencies.get(name, 0)))


@dataclass
class RankingOptions:
    max_predictions: int = 100
    rank_sort_algo: str = "potential"
    affinity_emotive: str | None = None


def average_emotives(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the arithmetic mean over the entries that contain it (spec §1.7)."""
    values: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            values.setdefault(key, []).append(value)
    return {key: float(sum(v) / len(v)) for key, v in values.items()}


def shannon_entropy(symbols: Sequence[str]) -> float:
    n = len(symbols)
    if n == 0:
        return 0.0
    return float(sum(-(p * math.log(p, 2)) for p in (c / n for c in Counter(symbols).values()) if p > 0))


def _expectation(p: float, base: int) -> float:
    return -p * math.log(p, base) if p > 0 and base > 1 else 0.0


def normalized_entropy(symbols: Sequence[str], total_symbols: int) -> float:
    n = len(symbols)
    if n == 0:
        return 0.0
    return float(sum(_expectation(c / n, total_symbols) for c in Counter(symbols).values()))


def global_normalized_entropy(symbols: Sequence[str], probability: Mapping[str, float], total_symbols: int) -> float:
    return float(sum(_expectation(probability.get(s, 0.0), total_symbols) for s in dict.fromkeys(symbols)))


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


def _score_reference(candidates: list[CandidateMatch], state_events: Sequence[Sequence[str]], stats: CorpusStats,
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
    tup = stats.total_unique_patterns

    probability: dict[str, float] = {}
    for c in kept:
        for s in [*c.matches, *flatten(c.missing)]:
            if s not in probability:
                probability[s] = stats.pmf.get(s, 0) / tup if tup > 0 else 0.0

    frequencies = [stats.frequency(c.name) for c in kept]
    sum_freq = sum(frequencies)
    sum_sim_prior = sum(c.similarity * (f / sum_freq) for c, f in zip(kept, frequencies)) if sum_freq else 0.0
    weights = (affinity_weights(weight_symbols if weight_symbols is not None else state, stats,
                                options.affinity_emotive) if options.affinity_emotive else None)

    predictions: list[dict[str, Any]] = []
    for c, freq in zip(kept, frequencies):
        present = c.present_symbols
        intrinsics = stats.intrinsics.get(c.name)
        if intrinsics is not None:
            entropy = intrinsics.entropy
            norm_entropy = intrinsics.normalized_entropy
            global_entropy = intrinsics.global_normalized_entropy
            tf = intrinsics.tf_vector
        else:
            entropy = shannon_entropy(present)
            norm_entropy = normalized_entropy(present, stats.total_symbols)
            global_entropy = global_normalized_entropy(present, probability, stats.total_symbols)
            tf = tf_vector(present)
        p_e_h = freq / stats.total_pattern_frequencies if stats.total_pattern_frequencies > 0 else 0.0
        confluence = p_e_h * (1 - conditional_probability(present, probability)) if present else 0.0
        itfdf = 1 - itfdf_distance(state, present, probability) * freq / sum_freq if sum_freq else 0.0
        prior = freq / sum_freq if sum_freq else 0.0
        prediction = candidate_fields(c, freq, average_emotives(stats.emotives.get(c.name, [])))
        prediction.update({
            "entropy": float(entropy),
            "normalized_entropy": float(norm_entropy),
            "global_normalized_entropy": float(global_entropy),
            "confluence": float(confluence),
            "itfdf_similarity": float(itfdf),
            "tfidf_score": tfidf_score(tf, probability, tup),
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
        if pruned:
            prediction["_pre_potential"] = c.pre_potential
        if weights is not None:
            prediction.update(_weighted_fields(c, state, weights))
        predictions.append(prediction)

    future_potentials = _future_potentials(predictions)
    aggregate = {fp["_key"]: fp["aggregate_potential"] for fp in future_potentials}
    for p in predictions:
        if p["future"]:
            share = aggregate.get(future_key(p["future"]), 0.0)
            p["predictive_information"] = p["weighted_strength"] / share if share > 0 else 0.0
        if weights is not None:
            evidence, confidence, snr = p["weighted_evidence"], p["weighted_confidence"], p["weighted_snr"]
        else:
            evidence, confidence, snr = p["evidence"], p["confidence"], p["snr"]
        p["potential"] = float((evidence + confidence) * snr + p["itfdf_similarity"]
                               + fragmentation_term(p["fragmentation"]))
    for fp in future_potentials:
        del fp["_key"]

    predictions.sort(key=rank_key(options.rank_sort_algo))
    return predictions[:options.max_predictions], future_potentials


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


# ---------------------------------------------------------------------------------------------------------------
# Fast path. Same formulas as ``_score_reference``, evaluated once per distinct value instead of once per
# candidate: the symbols of the call are mapped to ints, the per-(candidate, distinct present symbol) terms are
# laid out in first-occurrence order and summed left to right (a column loop over a zero-padded matrix, so each
# sum adds the same floats in the same order as Python's ``sum`` and is bit-identical); scalar formulas are
# elementwise numpy (+, -, *, /, sqrt are correctly rounded, so identical); logs and powers use ``math``.
# ---------------------------------------------------------------------------------------------------------------

_NUMERIC_RANK_FIELDS = frozenset({
    "frequency", "similarity", "evidence", "confidence", "fragmentation", "snr", "entropy", "normalized_entropy",
    "global_normalized_entropy", "confluence", "itfdf_similarity", "tfidf_score", "pattern_probability",
    "weighted_strength", "predictive_information", "bayesian_prior", "bayesian_likelihood", "bayesian_posterior",
    "potential", "weighted_similarity", "weighted_evidence", "weighted_confidence", "weighted_snr",
})
_NAME = attrgetter("name")
_MATCHES = attrgetter("matches")
_MISSING = attrgetter("missing")
_PRESENT = attrgetter("present")
_FUTURE = attrgetter("future")
_JOIN_SYMBOLS = '", "'.join


def _plain_futures(futures: Sequence[Sequence[Sequence[str]]]) -> bool:
    """Whether every future symbol is a str that JSON writes as itself between quotes, and no event is empty.

    Then ``'[["' + '"], ["'.join(map('", "'.join, events)) + '"]]'`` is exactly ``json.dumps(events)``.
    """
    try:
        symbols = "".join(chain.from_iterable(chain.from_iterable(futures)))
    except TypeError:  # a symbol that is not a str
        return False
    return (all(chain.from_iterable(futures)) and symbols.isascii() and symbols.isprintable()
            and '"' not in symbols and "\\" not in symbols)


def _sha1_text(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _sequential_sums(values: np.ndarray, segment: np.ndarray, position: np.ndarray, segments: int) -> np.ndarray:
    """Per segment, ``sum()`` of its values in position order, added left to right from 0.0 like Python's sum.

    ``values`` is (m,) or (m, k); the result is (segments,) or (segments, k).
    """
    width = int(position.max()) + 1 if len(position) else 0
    padded = np.zeros((width, segments, *values.shape[1:]))
    padded[position, segment] = values
    total = np.zeros((segments, *values.shape[1:]))
    for row in padded:  # x + 0.0 == x for every x the sums can hold (they never hold -0.0)
        total += row
    return total


def _prune_fast(candidates: list[CandidateMatch], limit: int) -> list[CandidateMatch] | None:
    """``prune`` followed by the stable sort by name, in the order ``_score_reference`` produces; None for NaNs."""
    if len(candidates) <= limit:
        return sorted(candidates, key=_NAME)
    # CandidateMatch.pre_potential, inlined (one pass over the candidates is most of the cost here).
    pre_list = [(c.evidence + c.confidence) * c.snr + (0.0 if (f := c.fragmentation) == -1.0 else 1.0 / (f + 1.0))
                for c in candidates]
    pre = np.array(pre_list, dtype=np.float64)
    if np.isnan(pre).any():
        return None
    negative = -pre
    kth = np.partition(negative, limit - 1)[limit - 1]
    chosen = np.flatnonzero(negative < kth).tolist()
    tied = np.flatnonzero(negative == kth).tolist()
    need = limit - len(chosen)
    if len(tied) > need:  # the reference's tie-break among equal pre-potentials: similarity desc, then name
        tied_arr = np.array(tied, dtype=np.intp)
        negative_sim = -np.array([candidates[i].similarity for i in tied], dtype=np.float64)
        if np.isnan(negative_sim).any():
            return None
        kth_sim = np.partition(negative_sim, need - 1)[need - 1]
        chosen.extend(tied_arr[negative_sim < kth_sim].tolist())
        tied = tied_arr[negative_sim == kth_sim].tolist()
        need = limit - len(chosen)
        if len(tied) > need:
            tied_names = [candidates[i].name for i in tied]
            tied = [tied[j] for j in sorted(range(len(tied)), key=tied_names.__getitem__)[:need]]
    chosen.extend(tied)
    kept = [candidates[i] for i in chosen]
    names = list(map(_NAME, kept))
    if len(set(names)) == len(names):
        return [kept[j] for j in sorted(range(len(kept)), key=names.__getitem__)]
    # Duplicate names: the stable name sort of the list ordered by (-pre, -similarity, name, input order).
    chosen.sort(key=lambda i: (candidates[i].name, -pre_list[i], -candidates[i].similarity, i))
    return [candidates[i] for i in chosen]


def score(candidates: list[CandidateMatch], state_events: Sequence[Sequence[str]], stats: CorpusStats,
          options: RankingOptions, weight_symbols: Sequence[str] | None = None, total_candidates: int | None = None
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Corpus metrics, ranking and truncation of a candidate set; returns (predictions, future_potentials).

    ``weight_symbols`` are the symbols that get affinity weights (default: the state's symbols);
    ``total_candidates`` is the size of the full set when ``candidates`` are merged local tops.
    Vectorised; returns exactly what ``_score_reference`` returns.
    """
    if not candidates:
        return [], []
    limit = 3 * options.max_predictions
    if limit <= 0:
        return _score_reference(candidates, state_events, stats, options, weight_symbols, total_candidates)
    pruned = (len(candidates) if total_candidates is None else total_candidates) > limit
    kept = _prune_fast(candidates, limit)
    if kept is None:
        return _score_reference(candidates, state_events, stats, options, weight_symbols, total_candidates)

    n = len(kept)
    state = flatten(state_events)
    tup = stats.total_unique_patterns
    total_symbols = stats.total_symbols
    names = [c.name for c in kept]
    sims_raw = [c.similarity for c in kept]
    sims = np.array(sims_raw, dtype=np.float64)

    # P(s) for the symbols of matches and missing (membership matters to tf-idf and confluence).
    prob_symbols = dict.fromkeys(chain.from_iterable(map(_MATCHES, kept)))
    prob_symbols.update(dict.fromkeys(chain.from_iterable(chain.from_iterable(map(_MISSING, kept)))))
    n_prob = len(prob_symbols)
    if tup > 0:  # pmf counts / TUP: float64 division of exact ints is Python's int / int
        prob_values = np.fromiter(map(stats.pmf.get, prob_symbols, repeat(0)), np.float64, n_prob) / tup
    else:
        prob_values = np.zeros(n_prob)

    if stats.intrinsics:
        intrinsics_get = stats.intrinsics.get
        intrinsics = [intrinsics_get(name) for name in names]
        intrinsic_rows = [i for i, x in enumerate(intrinsics) if x is not None]
    else:
        intrinsic_rows = []

    presents = list(map(_PRESENT, kept))
    lengths = [sum(map(len, p)) for p in presents]
    flat = list(chain.from_iterable(chain.from_iterable(presents)))

    # One int per symbol of the call; ids below n_prob are exactly the symbols with a probability.
    vocabulary = dict.fromkeys(prob_symbols)
    vocabulary.update(dict.fromkeys(state))
    vocabulary.update(dict.fromkeys(flat))
    for i in intrinsic_rows:
        vocabulary.update(dict.fromkeys(intrinsics[i].tf_vector))
    ids = dict(zip(vocabulary, range(len(vocabulary))))
    size = len(ids)
    probability = np.zeros(size)
    probability[:n_prob] = prob_values

    # Per-symbol terms, computed once per distinct probability with the reference's own expressions.
    global_term = np.zeros(size)       # _expectation(P(s), total_symbols); P = 0.0 outside the cache
    log_term = np.full(size, math.log10(UNSEEN_SYMBOL_PROBABILITY))   # confluence's log10
    idf = np.ones(size)                # log2(TUP / n_s) + 1
    if tup != 0:
        idf[:] = math.log2(tup / 1) + 1
    if n_prob:
        unique_p, inverse_p = np.unique(probability[:n_prob], return_inverse=True)
        g_values, l_values, i_values = [], [], []
        for p in unique_p.tolist():
            g_values.append(_expectation(p, total_symbols))
            l_values.append(math.log10(p if p > 0 else UNSEEN_SYMBOL_PROBABILITY))
            i_values.append(math.log2(tup / max(1, int(p * tup))) + 1 if tup != 0 else 1.0)
        global_term[:n_prob] = np.array(g_values)[inverse_p]
        log_term[:n_prob] = np.array(l_values)[inverse_p]
        idf[:n_prob] = np.array(i_values)[inverse_p]

    state_ids = np.fromiter(map(ids.__getitem__, state), dtype=np.intp, count=len(state))
    state_counts = np.bincount(state_ids, minlength=size).astype(np.float64)

    # Present symbols: occurrences (confluence) and distinct (candidate, symbol) pairs in first-occurrence order
    # (entropies, tf-idf, itfdf vectors).
    lengths_arr = np.array(lengths, dtype=np.intp)
    n_flat = len(flat)
    sums = np.zeros((n, 8))
    pairs_per_row = np.zeros(n, dtype=np.intp)
    state_in_present = None
    state_unique = list(dict.fromkeys(state))
    if n_flat:
        flat_ids = np.fromiter(map(ids.__getitem__, flat), dtype=np.intp, count=n_flat)
        flat_row = np.repeat(np.arange(n), lengths_arr)
        flat_start = np.cumsum(lengths_arr) - lengths_arr
        flat_pos = np.arange(n_flat) - flat_start[flat_row]

        keys, first, counts = np.unique(flat_row * size + flat_ids, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        keys, counts = keys[order], counts[order]
        pair_row, pair_sym = keys // size, keys % size
        pairs_per_row = np.bincount(pair_row, minlength=n)
        pair_pos = np.arange(len(keys)) - (np.cumsum(pairs_per_row) - pairs_per_row)[pair_row]
        pair_n = lengths_arr[pair_row]

        # Shannon and normalized entropy terms: once per distinct (count, length).
        codes, inverse_c = np.unique(counts * (int(lengths_arr.max()) + 1) + pair_n, return_inverse=True)
        base = int(lengths_arr.max()) + 1
        h_values, ne_values = [], []
        for code in codes.tolist():
            p = (code // base) / (code % base)
            h_values.append(-(p * math.log(p, 2)))
            ne_values.append(_expectation(p, total_symbols))
        p_sym = probability[pair_sym]
        x = p_sym * state_counts[pair_sym]
        y = p_sym * counts
        terms = np.empty((len(keys), 8))
        terms[:, 0] = np.array(h_values)[inverse_c]
        terms[:, 1] = np.array(ne_values)[inverse_c]
        terms[:, 2] = global_term[pair_sym]
        terms[:, 3] = (counts / pair_n) * idf[pair_sym]
        terms[:, 4] = x * y
        terms[:, 5] = y * y
        terms[:, 6] = x * x
        terms[:, 7] = 0.0
        sums = _sequential_sums(terms, pair_row, pair_pos, n)
        sums[:, 7] = _sequential_sums(log_term[flat_ids], flat_row, flat_pos, n)

        if state_unique:
            column = np.full(size, -1, dtype=np.intp)
            column[[ids[s] for s in state_unique]] = np.arange(len(state_unique))
            hit = column[pair_sym] >= 0
            state_in_present = np.zeros((n, len(state_unique)), dtype=bool)
            state_in_present[pair_row[hit], column[pair_sym[hit]]] = True

    # itfdf's state norm: the present part above, then the state symbols absent from the present, in order.
    state_norm2 = sums[:, 6].copy()
    for j, s in enumerate(state_unique):
        v = probability[ids[s]] * state_counts[ids[s]]
        xx = v * v
        state_norm2 += xx if state_in_present is None else np.where(state_in_present[:, j], 0.0, xx)

    if type(stats).frequency is CorpusStats.frequency:  # CorpusStats.frequency, inlined
        frequency_get = stats.frequencies.get
        frequencies = [max(1, int(v)) for v in map(frequency_get, names, repeat(0))]
    else:
        frequencies = [stats.frequency(name) for name in names]
    freq = np.array(frequencies, dtype=np.float64)
    sum_freq = sum(frequencies)
    prior = freq / sum_freq
    prior_list = prior.tolist()
    sum_sim_prior = sum(map(mul, sims_raw, prior_list))
    weighted_strength = sims * prior
    posterior = weighted_strength / sum_sim_prior if sum_sim_prior > 0 else np.zeros(n)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norm_s = np.sqrt(state_norm2)
        norm_p = np.sqrt(sums[:, 5])
        distance = 1 - sums[:, 4] / (norm_s * norm_p)
        distance = np.where((norm_s == 0) | (norm_p == 0) | np.isnan(distance), 1.0, distance)
        itfdf = 1 - distance * freq / sum_freq
        tfidf = (np.where(pairs_per_row > 0, sums[:, 3] / np.maximum(pairs_per_row, 1), 0.0) if tup != 0
                 else np.zeros(n))
    tpf = stats.total_pattern_frequencies
    p_e_h = freq / tpf if tpf > 0 else np.zeros(n)
    conditional = np.array([10 ** t for t in sums[:, 7].tolist()]) if n_flat else np.zeros(n)
    confluence = np.where(lengths_arr > 0, p_e_h * (1 - conditional), 0.0)

    entropy = sums[:, 0].tolist()
    norm_entropy = sums[:, 1].tolist()
    global_entropy = sums[:, 2].tolist()
    tfidf_list = tfidf.tolist()
    if intrinsic_rows:
        tf_rows, tf_pos, tf_ids, tf_weights, tf_sizes = [], [], [], [], []
        for r, i in enumerate(intrinsic_rows):
            x_i = intrinsics[i]
            entropy[i] = float(x_i.entropy)
            norm_entropy[i] = float(x_i.normalized_entropy)
            global_entropy[i] = float(x_i.global_normalized_entropy)
            tf = x_i.tf_vector
            tf_sizes.append(len(tf))
            tf_rows.extend([r] * len(tf))
            tf_pos.extend(range(len(tf)))
            tf_ids.extend(map(ids.__getitem__, tf))
            tf_weights.extend(tf.values())
        if tf_rows and tup != 0:
            ids_arr = np.array(tf_ids, dtype=np.intp)
            totals = _sequential_sums(np.array(tf_weights, dtype=np.float64) * idf[ids_arr],
                                      np.array(tf_rows, dtype=np.intp), np.array(tf_pos, dtype=np.intp),
                                      len(intrinsic_rows))
            for r, i in enumerate(intrinsic_rows):
                tfidf_list[i] = float(totals[r] / tf_sizes[r]) if tf_sizes[r] else 0.0
        else:
            for i in intrinsic_rows:
                tfidf_list[i] = 0.0

    # Affinity-weighted fields.
    weights = (affinity_weights(weight_symbols if weight_symbols is not None else state, stats,
                                options.affinity_emotive) if options.affinity_emotive else None)
    if weights is not None:
        get = weights.get
        zero = repeat(0.0)
        w_state = sum(map(get, state, zero))
        w_sim, w_ev, w_conf, w_snr = [], [], [], []
        for c in kept:
            w_matches = sum(map(get, c.matches, zero))
            w_pattern = sum(map(get, chain.from_iterable(c.events), zero))
            w_present = sum(map(get, chain.from_iterable(c.present), zero))
            w_extras = sum(map(get, chain.from_iterable(c.extras), zero))
            denominator = w_state + w_pattern
            w_sim.append(2 * w_matches / denominator if denominator else None)
            w_ev.append(w_matches / w_pattern if w_pattern else 0.0)
            w_conf.append(w_matches / w_present if w_present else 0.0)
            w_snr.append(w_matches / (w_matches + w_extras) if (w_matches + w_extras) else 0.0)
        base = [(e + c) * r for e, c, r in zip(w_ev, w_conf, w_snr)]
    else:
        w_sim = w_ev = w_conf = w_snr = [None] * n
        base = [(c.evidence + c.confidence) * c.snr for c in kept]
    fragmentation_terms = [0.0 if (f := c.fragmentation) == -1.0 else 1.0 / (f + 1.0) for c in kept]  # inlined
    potential = (np.array(base, dtype=np.float64) + itfdf + np.array(fragmentation_terms, dtype=np.float64)).tolist()

    # Future potentials: one group per distinct future (events compared sorted), representative = first by name.
    futures = list(map(_FUTURE, kept))
    index: dict[str, int] = {}
    setdefault = index.setdefault
    if _plain_futures(futures):
        # Each future's key text is its future_key JSON, built directly (and injective: it is JSON).
        texts = ['[["' + '"], ["'.join(map(_JOIN_SYMBOLS, map(sorted, f))) + '"]]' if f else None for f in futures]
        group_index = np.array([-1 if t is None else setdefault(t, len(index)) for t in texts], dtype=np.intp)
        sha_key = _sha1_text
    else:  # repr is injective on lists of lists: the same grouping as the sha1 key
        group_index = np.array([setdefault(str(list(map(sorted, f))), len(index)) if f else -1 for f in futures],
                               dtype=np.intp)
        sha_key = None
    strength_list = weighted_strength.tolist()
    predictive = np.zeros(n)
    future_potentials: list[dict[str, Any]] = []
    if index:
        has = group_index >= 0
        member = group_index[has]
        total_weighted = np.zeros(len(index))
        np.add.at(total_weighted, member, (freq * sims)[has])  # unbuffered: adds in name order, like += would
        total_weight = sum(total_weighted.tolist())
        aggregate = total_weighted / total_weight if total_weight > 0 else np.zeros(len(index))
        share = aggregate[member]
        with np.errstate(divide="ignore", invalid="ignore"):
            predictive[has] = np.where(share > 0, weighted_strength[has] / share, 0.0)
        _, first = np.unique(member, return_index=True)
        representative = np.flatnonzero(has)[first].tolist()
        aggregate_list = aggregate.tolist()
        supporting = np.bincount(member, minlength=len(index)).tolist()
        twf_list = total_weighted.tolist()
        sha_keys = (list(map(sha_key, index)) if sha_key is not None
                    else [future_key(futures[i]) for i in representative])
        group_keys = list(zip(map(neg, aggregate_list), sha_keys))
        for g in sorted(range(len(index)), key=group_keys.__getitem__):
            future_potentials.append({"future": futures[representative[g]], "aggregate_potential": aggregate_list[g],
                                      "supporting_patterns": supporting[g], "total_weighted_frequency": twf_list[g]})
    predictive = predictive.tolist()

    itfdf_list = itfdf.tolist()
    confluence_list = confluence.tolist()
    posterior_list = posterior.tolist()

    emotives_get = stats.emotives.get

    def build(i: int) -> dict[str, Any]:
        c = kept[i]
        records = emotives_get(c.name)
        prediction = candidate_fields(c, frequencies[i], average_emotives(records) if records else {})
        prediction.update({
            "entropy": entropy[i],
            "normalized_entropy": norm_entropy[i],
            "global_normalized_entropy": global_entropy[i],
            "confluence": confluence_list[i],
            "itfdf_similarity": itfdf_list[i],
            "tfidf_score": tfidf_list[i],
            "pattern_probability": prior_list[i],
            "weighted_strength": strength_list[i],
            "predictive_information": predictive[i],
            "bayesian_prior": prior_list[i],
            "bayesian_likelihood": c.similarity,
            "bayesian_posterior": posterior_list[i],
            "potential": potential[i],
            "weighted_similarity": w_sim[i],
            "weighted_evidence": w_ev[i],
            "weighted_confidence": w_conf[i],
            "weighted_snr": w_snr[i],
        })
        if pruned:
            prediction["_pre_potential"] = c.pre_potential
        return prediction

    algo = options.rank_sort_algo
    if algo not in _NUMERIC_RANK_FIELDS:  # anything else: sort the dicts exactly as the reference does
        predictions = [build(i) for i in range(n)]
        predictions.sort(key=rank_key(algo))
        return predictions[:options.max_predictions], future_potentials
    field_lists: dict[str, Any] = {
        "frequency": frequencies, "similarity": sims_raw, "bayesian_likelihood": sims_raw,
        "entropy": entropy, "normalized_entropy": norm_entropy, "global_normalized_entropy": global_entropy,
        "confluence": confluence_list, "itfdf_similarity": itfdf_list, "tfidf_score": tfidf_list,
        "pattern_probability": prior_list, "bayesian_prior": prior_list, "weighted_strength": strength_list,
        "predictive_information": predictive, "bayesian_posterior": posterior_list, "potential": potential,
        "weighted_similarity": w_sim, "weighted_evidence": w_ev, "weighted_confidence": w_conf,
        "weighted_snr": w_snr,
    }
    values = field_lists[algo] if algo in field_lists else [getattr(c, algo) for c in kept]
    # rank_key over the name-sorted list: (-value, -similarity, name), stable. Without NaNs that is a lexsort by
    # (-value, -similarity, position), since equal names sit in list order.
    ranked = np.array([-math.inf if v is None else v for v in values], dtype=np.float64)
    if np.isnan(ranked).any() or np.isnan(sims).any():
        sort_keys = [(math.inf if v is None else -v, -s, name) for v, s, name in zip(values, sims_raw, names)]
        order = sorted(range(n), key=sort_keys.__getitem__)
    else:
        order = np.lexsort((np.arange(n), -sims, -ranked)).tolist()
    return [build(i) for i in order[:options.max_predictions]], future_potentials
