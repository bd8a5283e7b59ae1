"""The vectorised corpus metrics, pruning and ranking used on every prediction (spec §2.2, §2.5–§2.7).

Same formulas as ``schema.rules.metrics.score_reference``, evaluated once per distinct value instead of once per
candidate: the symbols of the call are mapped to ints, the per-(candidate, distinct present symbol) terms are laid
out in first-occurrence order and summed left to right (a column loop over a zero-padded matrix, so each sum adds
the same floats in the same order as Python's ``sum`` and is bit-identical); scalar formulas are elementwise numpy
(+, -, *, /, sqrt are correctly rounded, so identical); logs and powers use ``math``.

``score`` runs in stages, each a function of this module, in this order:

- ``_prune_fast``: keep the 3·max_predictions best pre-potentials, sorted by name (``_Kept``);
- ``_symbol_table``: the symbols of the call as ints, P(s), the present symbols (``_Symbols``);
- ``_symbol_terms``: per symbol, the global entropy term, confluence's log10 and the idf (``_SymbolTerms``);
- ``_present_sums``: per candidate, the sums over its present symbols — entropies, tf-idf, itfdf's dot product
  and norms, confluence's log sum (``_PresentSums``, via ``_present_pairs`` and ``_pair_terms``);
- ``_corpus_fields``: frequencies, priors, posteriors, itfdf similarity, tf-idf, confluence (``_CorpusFields``);
- ``_apply_intrinsics``: finalize-training's whole-pattern values override the present's, where stored;
- ``_affinity_fields`` and ``_potential``: the affinity-weighted fields (``_Weighted``) and potential;
- ``_future_potentials``: the future groups (``_group_futures``), their potentials, predictive information;
- ``_prediction_columns`` and ``_ranked_predictions``: rank, then build only the dicts that are returned.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import attrgetter, itemgetter, mul, neg
from typing import Any

import numpy as np

from schema.events import flatten
from schema.learning import average_emotives
from schema.rules.matching import CandidateMatch
from schema.rules.metrics import (
    UNSEEN_SYMBOL_PROBABILITY,
    CorpusStats,
    PatternIntrinsics,
    RankingOptions,
    affinity_weights,
    candidate_fields,
    entropy_term,
    future_key,
    rank_key,
    score_reference,
)

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
    """``prune`` followed by the stable sort by name, in the order ``score_reference`` produces; None for NaNs."""
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


# Columns of _PresentSums.sums, per candidate: sums over its distinct present symbols, then (the last) over
# every present occurrence.
_ENTROPY, _NORM_ENTROPY, _GLOBAL_ENTROPY, _TF_IDF, _DOT, _PRESENT_NORM2, _STATE_NORM2, _LOG_CONDITIONAL = range(8)


@dataclass
class _Kept:
    """The candidates that survive pruning, sorted by name, with the columns most stages read."""

    candidates: list[CandidateMatch]
    names: list[str]
    similarities: list[float]
    sims: np.ndarray  # the similarities as float64

    @classmethod
    def of(cls, candidates: list[CandidateMatch]) -> _Kept:
        similarities = [c.similarity for c in candidates]
        return cls(candidates, [c.name for c in candidates], similarities, np.array(similarities, dtype=np.float64))


@dataclass
class _Symbols:
    """The symbols of the call as ints, their probabilities, and the present symbols of every candidate."""

    ids: dict[str, int]                         # ids below n_prob are exactly the symbols with a probability
    probability: np.ndarray                     # P(s) by id; 0.0 from n_prob on
    n_prob: int
    flat: list[str]                             # the present symbols, candidate after candidate
    lengths: np.ndarray                         # the number of present symbols per candidate
    stored: list[tuple[int, PatternIntrinsics]]  # (candidate, finalize-training's values) where they are stored


@dataclass
class _SymbolTerms:
    """Per symbol id, the terms the per-candidate sums add."""

    global_term: np.ndarray  # entropy_term(P(s), total_symbols); P = 0.0 outside the cache
    log_term: np.ndarray     # confluence's log10
    idf: np.ndarray          # log2(TUP / n_s) + 1


@dataclass
class _Pairs:
    """Present symbols: occurrences (confluence) and distinct (candidate, symbol) pairs in first-occurrence order
    (entropies, tf-idf, itfdf vectors)."""

    flat_ids: np.ndarray  # per occurrence: symbol id,
    flat_row: np.ndarray  # candidate,
    flat_pos: np.ndarray  # and position in the candidate's present
    row: np.ndarray       # per pair: candidate,
    sym: np.ndarray       # symbol id,
    pos: np.ndarray       # position among the candidate's pairs,
    counts: np.ndarray    # occurrences of the symbol in the candidate's present,
    length: np.ndarray    # and the length of that present
    per_row: np.ndarray   # the number of pairs per candidate


@dataclass
class _PresentSums:
    sums: np.ndarray           # (candidates, 8): the columns _ENTROPY … _LOG_CONDITIONAL
    pairs_per_row: np.ndarray  # distinct present symbols per candidate
    state_norm2: np.ndarray    # itfdf's squared state norm, per candidate


@dataclass
class _CorpusFields:
    """The corpus-dependent prediction fields, per kept candidate."""

    frequencies: list[int]
    freq: np.ndarray
    prior: list[float]  # pattern_probability and bayesian_prior
    weighted_strength: np.ndarray
    posterior: np.ndarray
    itfdf: np.ndarray
    confluence: np.ndarray
    tfidf: list[float]
    entropy: list[float]
    normalized_entropy: list[float]
    global_entropy: list[float]


@dataclass
class _Weighted:
    """The affinity-weighted fields (all None without an affinity emotive) and the first term of potential."""

    similarity: Sequence[float | None]
    evidence: Sequence[float | None]
    confidence: Sequence[float | None]
    snr: Sequence[float | None]
    base: list[float]  # (evidence + confidence) * snr, weighted when there are weights


def score(candidates: list[CandidateMatch], state_events: Sequence[Sequence[str]], stats: CorpusStats,
          options: RankingOptions, weight_symbols: Sequence[str] | None = None, total_candidates: int | None = None
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Corpus metrics, ranking and truncation of a candidate set; returns (predictions, future_potentials).

    ``weight_symbols`` are the symbols that get affinity weights (default: the state's symbols);
    ``total_candidates`` is the size of the full set when ``candidates`` are merged local tops.
    Vectorised; returns exactly what ``score_reference`` returns.
    """
    if not candidates:
        return [], []
    limit = 3 * options.max_predictions
    if limit <= 0:
        return score_reference(candidates, state_events, stats, options, weight_symbols, total_candidates)
    pruned = (len(candidates) if total_candidates is None else total_candidates) > limit
    survivors = _prune_fast(candidates, limit)
    if survivors is None:
        return score_reference(candidates, state_events, stats, options, weight_symbols, total_candidates)

    kept = _Kept.of(survivors)
    state = flatten(state_events)
    symbols = _symbol_table(kept, state, stats)
    terms = _symbol_terms(symbols, stats)
    present = _present_sums(symbols, terms, state, len(survivors), stats.total_symbols)
    fields = _corpus_fields(kept, symbols, present, stats)
    if symbols.stored:
        _apply_intrinsics(fields, symbols, terms.idf, stats.total_unique_patterns)
    weighted = _affinity_fields(survivors, state, stats, options, weight_symbols)
    potential = _potential(survivors, weighted.base, fields.itfdf)
    predictive, future_potentials = _future_potentials(list(map(_FUTURE, survivors)), fields.freq, kept.sims,
                                                       fields.weighted_strength)
    columns = _prediction_columns(kept, fields, weighted, potential, predictive)
    return _ranked_predictions(kept, columns, fields.frequencies, stats, options, pruned), future_potentials


def _symbol_table(kept: _Kept, state: list[str], stats: CorpusStats) -> _Symbols:
    """One int per symbol of the call, P(s) for the symbols of matches and missing, the present symbols."""
    tup = stats.total_unique_patterns
    # P(s) for the symbols of matches and missing (membership matters to tf-idf and confluence).
    prob_symbols = dict.fromkeys(chain.from_iterable(map(_MATCHES, kept.candidates)))
    prob_symbols.update(dict.fromkeys(chain.from_iterable(chain.from_iterable(map(_MISSING, kept.candidates)))))
    n_prob = len(prob_symbols)
    if tup > 0:  # pmf counts / TUP: float64 division of exact ints is Python's int / int
        prob_values = np.fromiter(map(stats.pmf.get, prob_symbols, repeat(0)), np.float64, n_prob) / tup
    else:
        prob_values = np.zeros(n_prob)

    stored: list[tuple[int, PatternIntrinsics]] = []
    if stats.intrinsics:
        intrinsics_get = stats.intrinsics.get
        stored = [(i, x) for i, x in enumerate(map(intrinsics_get, kept.names)) if x is not None]

    presents = list(map(_PRESENT, kept.candidates))
    lengths = [sum(map(len, p)) for p in presents]
    flat = list(chain.from_iterable(chain.from_iterable(presents)))

    # One int per symbol of the call; ids below n_prob are exactly the symbols with a probability.
    vocabulary = dict.fromkeys(prob_symbols)
    vocabulary.update(dict.fromkeys(state))
    vocabulary.update(dict.fromkeys(flat))
    for _, x in stored:
        vocabulary.update(dict.fromkeys(x.tf_vector))
    ids = dict(zip(vocabulary, range(len(vocabulary))))
    probability = np.zeros(len(ids))
    probability[:n_prob] = prob_values
    return _Symbols(ids, probability, n_prob, flat, np.array(lengths, dtype=np.intp), stored)


def _symbol_terms(symbols: _Symbols, stats: CorpusStats) -> _SymbolTerms:
    """Per-symbol terms, computed once per distinct probability with the reference's own expressions."""
    tup = stats.total_unique_patterns
    size, n_prob = len(symbols.ids), symbols.n_prob
    global_term = np.zeros(size)
    log_term = np.full(size, math.log10(UNSEEN_SYMBOL_PROBABILITY))
    idf = np.ones(size)
    if tup != 0:
        idf[:] = math.log2(tup / 1) + 1
    if n_prob:
        unique_p, inverse_p = np.unique(symbols.probability[:n_prob], return_inverse=True)
        g_values, l_values, i_values = [], [], []
        for p in unique_p.tolist():
            g_values.append(entropy_term(p, stats.total_symbols))
            l_values.append(math.log10(p if p > 0 else UNSEEN_SYMBOL_PROBABILITY))
            i_values.append(math.log2(tup / max(1, int(p * tup))) + 1 if tup != 0 else 1.0)
        global_term[:n_prob] = np.array(g_values)[inverse_p]
        log_term[:n_prob] = np.array(l_values)[inverse_p]
        idf[:n_prob] = np.array(i_values)[inverse_p]
    return _SymbolTerms(global_term, log_term, idf)


def _present_sums(symbols: _Symbols, terms: _SymbolTerms, state: list[str], n: int, total_symbols: int
                  ) -> _PresentSums:
    """Per candidate, the sums over its present symbols (each added in first-occurrence order), and itfdf's state
    norm."""
    ids = symbols.ids
    state_ids = np.fromiter(map(ids.__getitem__, state), dtype=np.intp, count=len(state))
    state_counts = np.bincount(state_ids, minlength=len(ids)).astype(np.float64)
    state_unique = list(dict.fromkeys(state))
    sums = np.zeros((n, 8))
    pairs_per_row = np.zeros(n, dtype=np.intp)
    state_in_present = None
    if symbols.flat:
        pairs = _present_pairs(symbols, n)
        pair_terms = _pair_terms(pairs, symbols, terms, state_counts, total_symbols)
        sums = _sequential_sums(pair_terms, pairs.row, pairs.pos, n)
        sums[:, _LOG_CONDITIONAL] = _sequential_sums(terms.log_term[pairs.flat_ids], pairs.flat_row, pairs.flat_pos,
                                                     n)
        pairs_per_row = pairs.per_row
        if state_unique:
            state_in_present = _state_in_present(pairs, ids, state_unique, n)

    # itfdf's state norm: the present part above, then the state symbols absent from the present, in order.
    state_norm2 = sums[:, _STATE_NORM2].copy()
    for j, s in enumerate(state_unique):
        v = symbols.probability[ids[s]] * state_counts[ids[s]]
        xx = v * v
        state_norm2 += xx if state_in_present is None else np.where(state_in_present[:, j], 0.0, xx)
    return _PresentSums(sums, pairs_per_row, state_norm2)


def _present_pairs(symbols: _Symbols, n: int) -> _Pairs:
    """Where each present occurrence and each distinct (candidate, symbol) pair sits (``symbols.flat`` not empty)."""
    ids, lengths_arr, size = symbols.ids, symbols.lengths, len(symbols.ids)
    n_flat = len(symbols.flat)
    flat_ids = np.fromiter(map(ids.__getitem__, symbols.flat), dtype=np.intp, count=n_flat)
    flat_row = np.repeat(np.arange(n), lengths_arr)
    flat_start = np.cumsum(lengths_arr) - lengths_arr
    flat_pos = np.arange(n_flat) - flat_start[flat_row]

    keys, first, counts = np.unique(flat_row * size + flat_ids, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    keys, counts = keys[order], counts[order]
    pair_row, pair_sym = keys // size, keys % size
    pairs_per_row = np.bincount(pair_row, minlength=n)
    pair_pos = np.arange(len(keys)) - (np.cumsum(pairs_per_row) - pairs_per_row)[pair_row]
    return _Pairs(flat_ids, flat_row, flat_pos, pair_row, pair_sym, pair_pos, counts, lengths_arr[pair_row],
                  pairs_per_row)


def _pair_terms(pairs: _Pairs, symbols: _Symbols, terms: _SymbolTerms, state_counts: np.ndarray,
                total_symbols: int) -> np.ndarray:
    """The term each pair adds to each column of the sums (_LOG_CONDITIONAL is summed over occurrences: 0.0)."""
    counts, pair_n, pair_sym = pairs.counts, pairs.length, pairs.sym
    # Shannon and normalized entropy terms: once per distinct (count, length).
    base = int(symbols.lengths.max()) + 1
    codes, inverse_c = np.unique(counts * base + pair_n, return_inverse=True)
    h_values, ne_values = [], []
    for code in codes.tolist():
        p = (code // base) / (code % base)
        h_values.append(-(p * math.log2(p)))  # as metrics.shannon_entropy
        ne_values.append(entropy_term(p, total_symbols))
    p_sym = symbols.probability[pair_sym]
    x = p_sym * state_counts[pair_sym]
    y = p_sym * counts
    pair_terms = np.empty((len(pair_sym), 8))
    pair_terms[:, _ENTROPY] = np.array(h_values)[inverse_c]
    pair_terms[:, _NORM_ENTROPY] = np.array(ne_values)[inverse_c]
    pair_terms[:, _GLOBAL_ENTROPY] = terms.global_term[pair_sym]
    pair_terms[:, _TF_IDF] = (counts / pair_n) * terms.idf[pair_sym]
    pair_terms[:, _DOT] = x * y
    pair_terms[:, _PRESENT_NORM2] = y * y
    pair_terms[:, _STATE_NORM2] = x * x
    pair_terms[:, _LOG_CONDITIONAL] = 0.0
    return pair_terms


def _state_in_present(pairs: _Pairs, ids: dict[str, int], state_unique: list[str], n: int) -> np.ndarray:
    """(candidate, distinct state symbol in order): whether the symbol is in the candidate's present."""
    column = np.full(len(ids), -1, dtype=np.intp)
    column[[ids[s] for s in state_unique]] = np.arange(len(state_unique))
    hit = column[pairs.sym] >= 0
    state_in_present = np.zeros((n, len(state_unique)), dtype=bool)
    state_in_present[pairs.row[hit], column[pairs.sym[hit]]] = True
    return state_in_present


def _frequencies(names: list[str], stats: CorpusStats) -> list[int]:
    if type(stats).frequency is CorpusStats.frequency:  # CorpusStats.frequency, inlined
        frequency_get = stats.frequencies.get
        return [max(1, int(v)) for v in map(frequency_get, names, repeat(0))]
    return [stats.frequency(name) for name in names]


def _corpus_fields(kept: _Kept, symbols: _Symbols, present: _PresentSums, stats: CorpusStats) -> _CorpusFields:
    """Frequencies, priors and posteriors, itfdf similarity, tf-idf, confluence and the present's entropies."""
    n = len(kept.names)
    sums = present.sums
    frequencies = _frequencies(kept.names, stats)
    freq = np.array(frequencies, dtype=np.float64)
    sum_freq = sum(frequencies)
    prior = freq / sum_freq
    prior_list = prior.tolist()
    sum_sim_prior = sum(map(mul, kept.similarities, prior_list))
    weighted_strength = kept.sims * prior
    posterior = weighted_strength / sum_sim_prior if sum_sim_prior > 0 else np.zeros(n)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        norm_s = np.sqrt(present.state_norm2)
        norm_p = np.sqrt(sums[:, _PRESENT_NORM2])
        distance = 1 - sums[:, _DOT] / (norm_s * norm_p)
        distance = np.where((norm_s == 0) | (norm_p == 0) | np.isnan(distance), 1.0, distance)
        itfdf = 1 - distance * freq / sum_freq
        pairs_per_row = present.pairs_per_row
        tfidf = (np.where(pairs_per_row > 0, sums[:, _TF_IDF] / np.maximum(pairs_per_row, 1), 0.0)
                 if stats.total_unique_patterns != 0 else np.zeros(n))
    tpf = stats.total_pattern_frequencies
    p_e_h = freq / tpf if tpf > 0 else np.zeros(n)
    conditional = np.array([10 ** t for t in sums[:, _LOG_CONDITIONAL].tolist()]) if symbols.flat else np.zeros(n)
    confluence = np.where(symbols.lengths > 0, p_e_h * (1 - conditional), 0.0)
    return _CorpusFields(frequencies, freq, prior_list, weighted_strength, posterior, itfdf, confluence,
                         tfidf.tolist(), sums[:, _ENTROPY].tolist(), sums[:, _NORM_ENTROPY].tolist(),
                         sums[:, _GLOBAL_ENTROPY].tolist())


def _apply_intrinsics(fields: _CorpusFields, symbols: _Symbols, idf: np.ndarray, tup: int) -> None:
    """finalize-training's whole-pattern entropies and tf vector replace the present's, where they are stored."""
    stored = symbols.stored
    tf_rows: list[int] = []
    tf_pos: list[int] = []
    tf_ids: list[int] = []
    tf_weights: list[float] = []
    tf_sizes: list[int] = []
    for r, (i, x_i) in enumerate(stored):
        fields.entropy[i] = float(x_i.entropy)
        fields.normalized_entropy[i] = float(x_i.normalized_entropy)
        fields.global_entropy[i] = float(x_i.global_normalized_entropy)
        tf = x_i.tf_vector
        tf_sizes.append(len(tf))
        tf_rows.extend([r] * len(tf))
        tf_pos.extend(range(len(tf)))
        tf_ids.extend(map(symbols.ids.__getitem__, tf))
        tf_weights.extend(tf.values())
    if tf_rows and tup != 0:
        ids_arr = np.array(tf_ids, dtype=np.intp)
        totals = _sequential_sums(np.array(tf_weights, dtype=np.float64) * idf[ids_arr],
                                  np.array(tf_rows, dtype=np.intp), np.array(tf_pos, dtype=np.intp), len(stored))
        for r, (i, _) in enumerate(stored):
            fields.tfidf[i] = float(totals[r] / tf_sizes[r]) if tf_sizes[r] else 0.0
    else:
        for i, _ in stored:
            fields.tfidf[i] = 0.0


def _affinity_fields(kept: list[CandidateMatch], state: list[str], stats: CorpusStats, options: RankingOptions,
                     weight_symbols: Sequence[str] | None) -> _Weighted:
    """Affinity-weighted fields (spec §2.6)."""
    weights = (affinity_weights(weight_symbols if weight_symbols is not None else state, stats,
                                options.affinity_emotive) if options.affinity_emotive else None)
    if weights is None:
        unweighted: list[float | None] = [None] * len(kept)
        return _Weighted(unweighted, unweighted, unweighted, unweighted,
                         [(c.evidence + c.confidence) * c.snr for c in kept])
    get = weights.get
    zero = repeat(0.0)
    w_state = sum(map(get, state, zero))
    w_sim: list[float | None] = []
    w_ev: list[float] = []
    w_conf: list[float] = []
    w_snr: list[float] = []
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
    return _Weighted(w_sim, w_ev, w_conf, w_snr, [(e + c) * r for e, c, r in zip(w_ev, w_conf, w_snr)])


def _potential(kept: list[CandidateMatch], base: list[float], itfdf: np.ndarray) -> list[float]:
    fragmentation_terms = [0.0 if (f := c.fragmentation) == -1.0 else 1.0 / (f + 1.0) for c in kept]  # inlined
    return (np.array(base, dtype=np.float64) + itfdf + np.array(fragmentation_terms, dtype=np.float64)).tolist()


def _group_futures(futures: list[list[list[str]]]
                   ) -> tuple[np.ndarray, dict[str, int], Callable[[str], str] | None]:
    """One group per distinct future (events compared sorted), numbered in order of first occurrence.

    Returns each candidate's group (-1 for an empty future), the groups by their text, and the function that turns
    a text into the group's ``future_key`` (None when the text is not the key's JSON).
    """
    index: dict[str, int] = {}
    setdefault = index.setdefault
    if _plain_futures(futures):
        # Each future's key text is its future_key JSON, built directly (and injective: it is JSON).
        texts = ['[["' + '"], ["'.join(map(_JOIN_SYMBOLS, map(sorted, f))) + '"]]' if f else None for f in futures]
        group_index = np.array([-1 if t is None else setdefault(t, len(index)) for t in texts], dtype=np.intp)
        return group_index, index, _sha1_text
    # repr is injective on lists of lists: the same grouping as the sha1 key
    group_index = np.array([setdefault(str(list(map(sorted, f))), len(index)) if f else -1 for f in futures],
                           dtype=np.intp)
    return group_index, index, None


def _future_potentials(futures: list[list[list[str]]], freq: np.ndarray, sims: np.ndarray,
                       weighted_strength: np.ndarray) -> tuple[list[float], list[dict[str, Any]]]:
    """Predictive information per candidate, and the future potentials, ranked (spec §2.7).

    A group's future is its representative's: its first candidate by name.
    """
    group_index, index, sha_key = _group_futures(futures)
    predictive = np.zeros(len(futures))
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
    return predictive.tolist(), future_potentials


def _prediction_columns(kept: _Kept, fields: _CorpusFields, weighted: _Weighted, potential: list[float],
                        predictive: list[float]) -> dict[str, list[Any]]:
    """The fields a prediction adds after ``candidate_fields``, in KATO's order: one list per field."""
    return {
        "entropy": fields.entropy,
        "normalized_entropy": fields.normalized_entropy,
        "global_normalized_entropy": fields.global_entropy,
        "confluence": fields.confluence.tolist(),
        "itfdf_similarity": fields.itfdf.tolist(),
        "tfidf_score": fields.tfidf,
        "pattern_probability": fields.prior,
        "weighted_strength": fields.weighted_strength.tolist(),
        "predictive_information": predictive,
        "bayesian_prior": fields.prior,
        "bayesian_likelihood": kept.similarities,
        "bayesian_posterior": fields.posterior.tolist(),
        "potential": potential,
        "weighted_similarity": weighted.similarity,
        "weighted_evidence": weighted.evidence,
        "weighted_confidence": weighted.confidence,
        "weighted_snr": weighted.snr,
    }


def _ranked_predictions(kept: _Kept, columns: dict[str, list[Any]], frequencies: list[int], stats: CorpusStats,
                        options: RankingOptions, pruned: bool) -> list[dict[str, Any]]:
    """The top ``max_predictions`` prediction dicts in rank order; for a numeric field only those are built."""
    candidates = kept.candidates
    emotives_get = stats.emotives.get
    keys, values_by_key = tuple(columns), tuple(columns.values())

    def build(i: int) -> dict[str, Any]:
        c = candidates[i]
        records = emotives_get(c.name)
        prediction = candidate_fields(c, frequencies[i], average_emotives(records) if records else {})
        prediction.update(zip(keys, map(itemgetter(i), values_by_key)))
        if pruned:
            prediction["_pre_potential"] = c.pre_potential
        return prediction

    algo = options.rank_sort_algo
    if algo not in _NUMERIC_RANK_FIELDS:  # anything else: sort the dicts exactly as the reference does
        predictions = [build(i) for i in range(len(candidates))]
        predictions.sort(key=rank_key(algo))
        return predictions[:options.max_predictions]
    field_lists: dict[str, list[Any]] = {"frequency": frequencies, "similarity": kept.similarities, **columns}
    values = field_lists[algo] if algo in field_lists else [getattr(c, algo) for c in candidates]
    return [build(i) for i in _rank_order(values, kept)[:options.max_predictions]]


def _rank_order(values: list[Any], kept: _Kept) -> list[int]:
    """The positions of the kept candidates in ``rank_key`` order by ``values``."""
    # rank_key over the name-sorted list: (-value, -similarity, name), stable. Without NaNs that is a lexsort by
    # (-value, -similarity, position), since equal names sit in list order.
    sims = kept.sims
    ranked = np.array([-math.inf if v is None else v for v in values], dtype=np.float64)
    if np.isnan(ranked).any() or np.isnan(sims).any():
        sort_keys = [(math.inf if v is None else -v, -s, name) for v, s, name in zip(values, kept.similarities,
                                                                                      kept.names)]
        return sorted(range(len(values)), key=sort_keys.__getitem__)
    return np.lexsort((np.arange(len(values)), -sims, -ranked)).tolist()
