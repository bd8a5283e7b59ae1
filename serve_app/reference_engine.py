"""The reference prediction engine: KATO's semantics over a whole corpus, one candidate at a time.

Simple and obviously correct rather than fast; the sharded predictor must return exactly what this returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actors.matching import CandidateMatch, extract
from schema.events import flatten
from serve_app.corpus_metrics import CorpusStats, RankingOptions, score


@dataclass(frozen=True)
class QueryOptions:
    """The session-config keys a prediction reads (spec §2.1)."""

    recall_threshold: float = 0.1
    max_predictions: int = 100
    use_token_matching: bool = True
    fuzzy_token_threshold: float = 0.0
    rank_sort_algo: str = "potential"
    affinity_emotive: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QueryOptions:
        return cls(
            recall_threshold=float(config.get("recall_threshold", 0.1)),
            max_predictions=int(config.get("max_predictions", 100)),
            use_token_matching=bool(config.get("use_token_matching", True)),
            fuzzy_token_threshold=float(config.get("fuzzy_token_threshold") or 0.0),
            rank_sort_algo=str(config.get("rank_sort_algo") or "potential"),
            affinity_emotive=config.get("affinity_emotive") or None,
        )

    @property
    def ranking(self) -> RankingOptions:
        return RankingOptions(self.max_predictions, self.rank_sort_algo, self.affinity_emotive)


def is_single_symbol(stm: Sequence[Sequence[str]]) -> bool:
    return sum(len(e) for e in stm) == 1


def match_candidates(stm: Sequence[Sequence[str]], patterns: Iterable[tuple[str, list[list[str]]]],
                     options: QueryOptions) -> list[CandidateMatch]:
    """Every stored pattern that survives extraction for this STM (spec §2.3, §2.4)."""
    state = flatten(stm)
    stm_events = [list(e) for e in stm]
    if len(state) == 1:
        symbol = state[0]
        return [m for name, events in patterns if events and events[0] and events[0][0] == symbol
                for m in [extract(name, events, stm_events, 0.0, options.use_token_matching, 0.0)] if m]
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
