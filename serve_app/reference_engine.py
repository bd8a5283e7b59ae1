"""The reference prediction engine: KATO's semantics over a whole corpus, one candidate at a time.

Simple and obviously correct rather than fast; the sharded predictor must return exactly what this returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from actors.matching import CandidateMatch, extract
from schema.config import ServerDefaults
from schema.events import flatten
from serve_app.corpus_metrics import CorpusStats, RankingOptions, score

PYTHON_STAGES = frozenset({"bloom", "rapidfuzz"})
STORED_MINHASH_SHAPE = (100, 20, 5)  # num_hashes, bands, rows of the stored signatures


@dataclass(frozen=True)
class FilterParams:
    """Filter-stage parameters, read as ``value or default`` like KATO (a configured 0 means the default);
    the defaults are the server's (``ServerDefaults``)."""

    length_min_ratio: float
    length_max_ratio: float
    jaccard_threshold: float
    jaccard_min_overlap: int
    minhash_threshold: float
    minhash_bands: int
    minhash_rows: int
    minhash_num_hashes: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any], defaults: ServerDefaults | None = None) -> FilterParams:
        defaults = defaults or ServerDefaults()
        return cls(**{f.name: config.get(f.name) or getattr(defaults, f.name) for f in fields(cls)})

    def length_bounds(self, state_len: int) -> tuple[int, int]:
        return max(1, int(state_len * self.length_min_ratio)), int(state_len * self.length_max_ratio)

    def minhash_shape(self) -> tuple[int, int, int]:
        """(num_hashes, effective bands, rows): bands := num_hashes // rows when they do not multiply out."""
        n, bands, rows = self.minhash_num_hashes, self.minhash_bands, self.minhash_rows
        return n, (bands if bands * rows == n else n // rows), rows


@dataclass(frozen=True)
class QueryOptions:
    """The session-config keys a prediction reads (spec §2.1)."""

    recall_threshold: float = 0.1
    max_predictions: int = 100
    use_token_matching: bool = True
    fuzzy_token_threshold: float = 0.0
    rank_sort_algo: str = "potential"
    affinity_emotive: str | None = None
    filter_pipeline: tuple[str, ...] = ()
    filters: FilterParams = field(default_factory=lambda: FilterParams.from_config({}))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QueryOptions:
        return cls(
            recall_threshold=float(config.get("recall_threshold", 0.1)),
            max_predictions=int(config.get("max_predictions", 100)),
            use_token_matching=bool(config.get("use_token_matching", True)),
            fuzzy_token_threshold=float(config.get("fuzzy_token_threshold") or 0.0),
            rank_sort_algo=str(config.get("rank_sort_algo") or "potential"),
            affinity_emotive=config.get("affinity_emotive") or None,
            filter_pipeline=tuple(config.get("filter_pipeline") or ()),
            filters=FilterParams.from_config(config),
        )

    @property
    def ranking(self) -> RankingOptions:
        return RankingOptions(self.max_predictions, self.rank_sort_algo, self.affinity_emotive)


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
        return extract("", events, stm, cutoff, options.use_token_matching, options.fuzzy_token_threshold) is not None
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


def stage_decision(stage: str, have_candidates: bool, options: QueryOptions) -> str:
    """KATO's executor rule for one stage: ``"run"``, ``"skip"`` it, or ``"empty"`` (the result is empty).

    Python-only stages need a candidate set from an earlier database stage and are skipped otherwise; a
    MinHash stage whose number of hashes differs from the stored signatures' is skipped (KATO's error path),
    one with a different banding finds nothing.
    """
    if stage in PYTHON_STAGES and not have_candidates:
        return "skip"
    if stage == "minhash":
        num_hashes, bands, rows = options.filters.minhash_shape()
        if num_hashes != STORED_MINHASH_SHAPE[0]:
            return "skip"
        if (bands, rows) != STORED_MINHASH_SHAPE[1:]:
            return "empty"
    return "run"


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
