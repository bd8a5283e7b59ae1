"""The filter pipeline inside a shard (spec §3.1–§3.2), vectorized over a KB's arrays.

Same decisions as ``schema.rules.reference.pipeline_names`` (both follow ``stage_decision``); a pipeline
without any database stage yields no candidates.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz import fuzz, process

from actors import kernels
from actors.kb_index import KBIndex
from actors.lsh import VocabularyRows
from schema.rules.query import QueryOptions, stage_decision


def pipeline_candidates(index: KBIndex, rows: VocabularyRows, state: list[str], state_ids: np.ndarray,
                        options: QueryOptions) -> np.ndarray:
    candidates: np.ndarray | None = None
    for stage in options.filter_pipeline:
        decision = stage_decision(stage, candidates is not None, options)
        if decision == "skip":
            continue
        if decision == "empty":
            return np.empty(0, np.int64)
        pool = index.all_ids() if candidates is None else candidates
        candidates = _apply(stage, index, rows, pool, state, state_ids, options)
        if candidates.shape[0] == 0:
            return candidates
    return candidates if candidates is not None else np.empty(0, np.int64)


def _apply(stage: str, index: KBIndex, rows: VocabularyRows, pool: np.ndarray, state: list[str],
           state_ids: np.ndarray, options: QueryOptions) -> np.ndarray:
    params = options.filters
    known = state_ids[state_ids >= 0]
    if stage == "length":
        lo, hi = params.length_bounds(len(state))
        lengths = index.lengths_of(pool)
        return pool[(lengths >= lo) & (lengths <= hi)]
    if stage == "jaccard":
        inter = index.shared_token_counts(known)[pool]
        union = index.distinct_counts.view()[pool] + len(set(state)) - inter
        keep = (inter >= params.jaccard_min_overlap) & (inter / union >= params.jaccard_threshold)
        return pool[keep]
    if stage == "bloom":
        return np.intersect1d(pool, index.containing_any(known), assume_unique=True)
    if stage == "rapidfuzz":
        cutoff = options.recall_threshold or 0.1
        sharing = np.intersect1d(pool, index.containing_any(known), assume_unique=True)
        if sharing.shape[0] == 0:
            return sharing
        if options.use_token_matching:
            sims = kernels.token_similarities(index.tokens.view(), index.offsets.view(), sharing, state_ids,
                                              ranked=False)
        else:
            joined = index.joined()
            sims = process.cdist([" ".join(state)], [joined[i] for i in sharing.tolist()], scorer=fuzz.ratio,
                                 dtype=np.float64, workers=1)[0] / 100.0
        return sharing[sims >= cutoff]
    if stage == "minhash":
        lsh = index.minhash_index(rows)
        query_sig = lsh.query_signature(state)
        hits = np.intersect1d(pool, lsh.candidates(query_sig), assume_unique=True)
        return hits[lsh.estimated_jaccard(hits, query_sig) >= params.minhash_threshold]
    raise ValueError(f"unknown filter stage {stage!r}")
