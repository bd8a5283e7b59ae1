"""The reference prediction engine: KATO's semantics over a whole corpus, one candidate at a time.

Simple and obviously correct rather than fast; the sharded predictor must return exactly what this returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from schema.events import flatten
from schema.rules.matching import CandidateMatch, extract, similarity
from schema.rules.metrics import CorpusStats
from schema.rules.query import STORED_MINHASH_SHAPE, QueryOptions, stage_decision
from schema.rules.scoring import score


def is_single_symbol(stm: Sequence[Sequence[str]]) -> bool:
    return sum(len(e) for e in stm) == 1


def _stage_keeps(stage: str, events: list[list[str]], state: list[str], stm: list[list[str]],
                 options: QueryOptions) -> bool:
    """One filter stage's verdict on one pattern (spec §3.2, with the project's bloom stance Q10)."""
    params = options.filters
    tokens = set(flatten(events))
    if stage == "length":
        lo, hi = params.length_bounds(len(state))
        return lo <= len(flatten(events)) <= hi
    if stage == "jaccard":
        query = set(state)
        inter = len(tokens & query)
        return inter >= params.jaccard_min_overlap and inter / len(tokens | query) >= params.jaccard_threshold
    if stage == "bloom":
        return bool(tokens & set(state))
    if stage == "rapidfuzz":
        cutoff = options.recall_threshold or 0.1
        sim = similarity(flatten(events), state, options.use_token_matching, as_ranked=False)
        return extract("", events, stm, cutoff, options.use_token_matching, options.fuzzy_token_threshold,
                       sim=sim) is not None
    if stage == "minhash":
        from datasketch import MinHash

        def signature(symbols: Iterable[str]):
            m = MinHash(num_perm=STORED_MINHASH_SHAPE[0], seed=1, scheme="legacy")
            for s in symbols:
                m.update(s.encode("utf8"))
            return m

        query_sig, pattern_sig = signature(set(state)), signature(tokens)
        rows = params.minhash_rows
        q, p = query_sig.hashvalues, pattern_sig.hashvalues
        shared_band = any(tuple(q[b * rows:(b + 1) * rows]) == tuple(p[b * rows:(b + 1) * rows])
                          for b in range(STORED_MINHASH_SHAPE[1]))
        return shared_band and query_sig.jaccard(pattern_sig) >= params.minhash_threshold
    raise ValueError(f"unknown filter stage {stage!r}")


def pipeline_names(stm: Sequence[Sequence[str]], patterns: Iterable[tuple[str, list[list[str]]]],
                   options: QueryOptions) -> set[str]:
    """Names the filter pipeline pre-selects (spec §3.1): stages in order under ``stage_decision``; no
    database stage at all means no candidates."""
    state = flatten(stm)
    stm_events = [list(e) for e in stm]
    pool = dict(patterns)
    candidates: set[str] | None = None
    for stage in options.filter_pipeline:
        decision = stage_decision(stage, candidates is not None, options)
        if decision == "skip":
            continue
        if decision == "empty":
            return set()
        names = pool if candidates is None else candidates
        candidates = {n for n in names if _stage_keeps(stage, pool[n], state, stm_events, options)}
        if not candidates:
            return set()
    return candidates or set()


def match_candidates(stm: Sequence[Sequence[str]], patterns: Iterable[tuple[str, list[list[str]]]],
                     options: QueryOptions) -> list[CandidateMatch]:
    """Every stored pattern that survives the filter pipeline and extraction (spec §2.3, §2.4, §3.1)."""
    state = flatten(stm)
    stm_events = [list(e) for e in stm]
    if len(state) == 1:
        symbol = state[0]
        return [m for name, events in patterns if events and events[0] and events[0][0] == symbol
                for m in [extract(name, events, stm_events, 0.0, options.use_token_matching, 0.0)] if m]
    if options.filter_pipeline:
        patterns = list(patterns)
        allowed = pipeline_names(stm, patterns, options)
        patterns = [(name, events) for name, events in patterns if name in allowed]
    found = [extract(name, events, stm_events, options.recall_threshold, options.use_token_matching,
                     options.fuzzy_token_threshold) for name, events in patterns]
    return [m for m in found if m is not None and m.similarity >= options.recall_threshold]


def weight_symbols(stm: Sequence[Sequence[str]], candidates: Sequence[CandidateMatch]) -> list[str]:
    """Symbols that receive affinity weights: the state, plus the candidates' on the single-symbol path."""
    state = flatten(stm)
    if len(state) != 1:
        return state
    return [*state, *(s for c in candidates for s in flatten(c.events))]


def predict(stm: Sequence[Sequence[str]], patterns: Iterable[tuple[str, list[list[str]]]], stats: CorpusStats,
            options: QueryOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Predictions and future potentials for an STM over a corpus of ``(bare name, events)``."""
    if not flatten(stm):
        return [], []
    candidates = match_candidates(stm, patterns, options)
    return score(candidates, stm, stats, options.ranking, weight_symbols(stm, candidates))
