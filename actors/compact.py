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
from schema.events import flatten
from schema.rules.matching import CandidateMatch, fix_up, from_split, state_extras


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
        """The full fields of the candidates at ``positions`` (named ``names``), against the STM.

        Where each candidate's past ends and its present ends (in events, before KATO's fix-up of the last
        past event) is found for all of them at once: ``split_events`` walks the event sizes instead."""
        state = flatten(stm)
        if not positions:
            return []
        at = np.asarray(positions, dtype=np.int64)
        bounds = np.concatenate(([0], np.cumsum(self.event_sizes, dtype=np.int64)))  # every event's flat start
        first_block = self.block_starts[at].astype(np.int64)
        after_block = self.block_starts[at + 1].astype(np.int64)
        has_blocks = after_block > first_block
        rows = self.blocks if len(self.blocks) else np.zeros((1, 3), dtype=np.int64)
        first = rows[np.where(has_blocks, first_block, 0)].astype(np.int64)
        last = rows[np.where(has_blocks, after_block - 1, 0)].astype(np.int64)
        token_lo, event_lo = self.token_starts[at].astype(np.int64), self.event_starts[at].astype(np.int64)
        lengths = self.token_starts[at + 1] - token_lo
        past_end = token_lo + np.where(has_blocks, first[:, 0], 0)
        present_end = np.where(has_blocks, token_lo + last[:, 0] + last[:, 2], token_lo + lengths)
        past_events = (np.searchsorted(bounds, past_end) - event_lo).tolist()
        present_events = (np.searchsorted(bounds, present_end) - event_lo).tolist()

        kept_flat = np.asarray(self.symbols, dtype=object)[self.tokens[gathered_rows(self.token_starts, at)]].tolist()
        kept_sizes = self.event_sizes[gathered_rows(self.event_starts, at)].tolist()
        event_counts = (self.event_starts[at + 1] - event_lo).tolist()
        block_starts = self.block_starts.tolist()
        sims, extras = self.similarities[at].tolist(), self.extras[at].tolist()
        stm_symbols = set(state)
        extras_of: dict[frozenset[str], list[list[str]]] = {}  # by the STM symbols a present holds
        out = []
        token_at = event_at = 0
        for k, (position, name) in enumerate(zip(positions, names)):
            offsets = [0]
            for size in kept_sizes[event_at:event_at + event_counts[k]]:
                offsets.append(offsets[-1] + size)
            event_at += event_counts[k]
            flat = kept_flat[token_at:token_at + offsets[-1]]
            token_at += offsets[-1]
            events = [flat[a:b] for a, b in zip(offsets, offsets[1:])]
            blocks = self.blocks[block_starts[position]:block_starts[position + 1]].tolist()
            matches = [s for _, j, n in blocks for s in state[j:j + n]]
            e1 = fix_up(events, past_events[k], matches[0] if matches else None)
            e2 = present_events[k]
            split = (events[:e1], events[e1:e2], events[e2:])
            present_flat = flat[offsets[e1]:offsets[e2]]
            held = frozenset(stm_symbols.intersection(present_flat))
            extras_list = extras_of.get(held)
            if extras_list is None:
                extras_list = extras_of[held] = state_extras(stm, held)
            out.append(from_split(name, events, stm, offsets[-1], sims[k], len(blocks),
                                  matches, extras[k], split, present_flat, extras=extras_list))
        return out


def compact_candidates(index: KBIndex, locals_: np.ndarray, state_ids: np.ndarray) -> CompactCandidates:
    """The compact form of these patterns of ``index`` against the state's token ids (token mode), each array in
    the narrowest type that holds it: what a shard sends for every query."""
    sims, blocks, block_starts, extras = kernels.candidate_blocks(index.tokens.view(), index.offsets.view(),
                                                                  locals_, state_ids)
    token_ids = index.tokens.view()[gathered_rows(index.offsets.view(), locals_)]
    used, local_tokens = np.unique(token_ids, return_inverse=True)
    symbols = index.vocabulary.symbols
    event_counts = index.event_counts_of(locals_)
    lengths = index.lengths_of(locals_)
    return CompactCandidates(
        symbols=[symbols[t] for t in used.tolist()],
        tokens=narrowest(local_tokens),
        token_starts=narrowest(np.concatenate(([0], np.cumsum(lengths)))),
        event_sizes=narrowest(index.event_sizes.view()[gathered_rows(index.event_offsets.view(), locals_)]),
        event_starts=narrowest(np.concatenate(([0], np.cumsum(event_counts)))),
        blocks=narrowest(blocks), block_starts=narrowest(block_starts), extras=narrowest(extras),
        similarities=sims)


def narrowest(values: np.ndarray) -> np.ndarray:
    """Integer ``values`` in the smallest integer type that holds them all."""
    if not values.size:
        return values
    dtype = np.result_type(np.min_scalar_type(int(values.min())), np.min_scalar_type(int(values.max())))
    return values.astype(dtype, copy=False)
