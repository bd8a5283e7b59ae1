"""Token-mode candidates as a few flat arrays: what a shard ships instead of per-candidate Python objects.

A shard's local top is built here in one kernel pass (similarity, blocks, flat extras) plus one gather of
the token ids. Whoever holds the arrays (the predictor, after merging the local tops) assembles the
``CandidateMatch`` of just the candidates it keeps. Pickling a few arrays costs a fraction of pickling
hundreds of small objects, and the shard does no per-candidate Python work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from actors import kernels
from actors.kb_index import KBIndex, gathered_rows
from actors.matching import CandidateMatch, assemble
from schema.events import flatten


@dataclass
class CompactCandidates:
    """Candidates ``0..n-1``: their symbols (ids into ``symbols``), event sizes, blocks and flat extras."""

    symbols: list[str]
    tokens: np.ndarray          # int32 ids into ``symbols``; candidate c owns token_starts[c]:token_starts[c + 1]
    token_starts: np.ndarray
    event_sizes: np.ndarray     # candidate c owns event_starts[c]:event_starts[c + 1]
    event_starts: np.ndarray
    blocks: np.ndarray          # rows (i, j, n); candidate c owns block_starts[c]:block_starts[c + 1]
    block_starts: np.ndarray
    extras: np.ndarray
    similarities: np.ndarray

    def block_counts(self) -> np.ndarray:
        return np.diff(self.block_starts)

    def assemble(self, positions: Sequence[int], names: Sequence[str], stm: list[list[str]]
                 ) -> list[CandidateMatch]:
        """The full fields of the candidates at ``positions`` (named ``names``), against the STM."""
        state = flatten(stm)
        symbols = self.symbols
        flat_all = [symbols[t] for t in self.tokens.tolist()]
        token_starts, event_starts = self.token_starts.tolist(), self.event_starts.tolist()
        block_starts, sizes_all = self.block_starts.tolist(), self.event_sizes.tolist()
        rows_all = [(i, j, n) for i, j, n in self.blocks.tolist()]
        sims, extras = self.similarities.tolist(), self.extras.tolist()
        out = []
        for position, name in zip(positions, names):
            lo, hi = token_starts[position], token_starts[position + 1]
            events, at = [], lo
            for size in sizes_all[event_starts[position]:event_starts[position + 1]]:
                events.append(flat_all[at:at + size])
                at += size
            blocks = rows_all[block_starts[position]:block_starts[position + 1]]
            matches = [s for _, j, n in blocks for s in state[j:j + n]]
            out.append(assemble(name, events, stm, hi - lo, sims[position], blocks, matches, extras[position]))
        return out


def compact_candidates(index: KBIndex, locals_: np.ndarray, state_ids: np.ndarray) -> CompactCandidates:
    """The compact form of these patterns of ``index`` against the state's token ids (token mode)."""
    sims, blocks, block_starts, extras = kernels.candidate_blocks(index.tokens.view(), index.offsets.view(),
                                                                  locals_, state_ids)
    token_ids = index.tokens.view()[gathered_rows(index.offsets.view(), locals_)]
    used, local_tokens = np.unique(token_ids, return_inverse=True)
    symbols = index.vocabulary.symbols
    event_counts = index.event_offsets.view()[locals_ + 1] - index.event_offsets.view()[locals_]
    lengths = index.lengths.view()[locals_].astype(np.int64)
    return CompactCandidates(
        symbols=[symbols[t] for t in used.tolist()],
        tokens=local_tokens.astype(np.int32),
        token_starts=np.concatenate(([0], np.cumsum(lengths))),
        event_sizes=index.event_sizes.view()[gathered_rows(index.event_offsets.view(), locals_)],
        event_starts=np.concatenate(([0], np.cumsum(event_counts))),
        blocks=blocks, block_starts=block_starts, extras=extras, similarities=sims)
