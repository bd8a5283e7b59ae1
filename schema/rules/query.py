"""What a prediction query reads from the session config (spec §2.1, §3.1–§3.3), and KATO's filter-stage rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from schema.config import ServerDefaults
from schema.rules.metrics import RankingOptions

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
    """The session-config keys a prediction reads (spec §2.1), and the patterns it must not see (``hidden``:
    learned after the observe whose predictions it computes; never from the config)."""

    recall_threshold: float = 0.1
    max_predictions: int = 100
    use_token_matching: bool = True
    fuzzy_token_threshold: float = 0.0
    rank_sort_algo: str = "potential"
    affinity_emotive: str | None = None
    filter_pipeline: tuple[str, ...] = ()
    filters: FilterParams = field(default_factory=lambda: FilterParams.from_config({}))
    hidden: tuple[str, ...] = ()

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
