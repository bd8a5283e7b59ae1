"""Per-candidate matching: KATO's extraction of one stored pattern against the state (spec §2.4, §2.5).

This is the reference, written for clarity over speed: one candidate at a time. The shard kernels compute
the same fields over whole candidate arrays and are tested against this module.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import LCSseq

from schema.events import flatten

Block = tuple[int, int, int]


def _longest_match(a: Sequence[Hashable], b2j: dict[Hashable, list[int]], alo: int, ahi: int, blo: int,
                   bhi: int) -> Block:
    """difflib's find_longest_match without junk: longest block, earliest in a, then earliest in b."""
    besti, bestj, bestsize = alo, blo, 0
    j2len: dict[int, int] = {}
    for i in range(alo, ahi):
        newj2len: dict[int, int] = {}
        for j in b2j.get(a[i], ()):
            if j < blo:
                continue
            if j >= bhi:
                break
            k = newj2len[j] = j2len.get(j - 1, 0) + 1
            if k > bestsize:
                besti, bestj, bestsize = i - k + 1, j - k + 1, k
        j2len = newj2len
    return besti, bestj, bestsize


def matching_blocks(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[Block]:
    """Blocks of ``difflib.SequenceMatcher(None, a, b, autojunk=False)``, without the terminal block."""
    b2j: dict[Hashable, list[int]] = {}
    for j, elt in enumerate(b):
        b2j.setdefault(elt, []).append(j)
    queue = [(0, len(a), 0, len(b))]
    found: list[Block] = []
    while queue:
        alo, ahi, blo, bhi = queue.pop()
        i, j, k = block = _longest_match(a, b2j, alo, ahi, blo, bhi)
        if k:
            found.append(block)
            if alo < i and blo < j:
                queue.append((alo, i, blo, j))
            if i + k < ahi and j + k < bhi:
                queue.append((i + k, ahi, j + k, bhi))
    found.sort()
    collapsed: list[Block] = []
    i1 = j1 = k1 = 0
    for i2, j2, k2 in found:
        if i1 + k1 == i2 and j1 + k1 == j2:
            k1 += k2
        else:
            if k1:
                collapsed.append((i1, j1, k1))
            i1, j1, k1 = i2, j2, k2
    if k1:
        collapsed.append((i1, j1, k1))
    return collapsed


def similarity(pattern: Sequence[str], state: Sequence[str], use_token_matching: bool,
               as_ranked: bool = True) -> float:
    """Token mode: 2·LCS/(|P|+|S|), as KATO ranks it (``kato_similarity``; ``as_ranked=False``: the value its
    rapidfuzz filter stage compares). Character mode: RapidFuzz ratio of the space-joined strings / 100."""
    if use_token_matching:
        total = len(pattern) + len(state)
        if total == 0:
            return 0.0
        ratio = 2.0 * LCSseq.similarity(pattern, state) / total
        return kato_similarity(ratio, len(state)) if as_ranked else ratio
    return fuzz.ratio(" ".join(pattern), " ".join(state)) / 100.0


def kato_similarity(ratio: float, state_length: int) -> float:
    """The token similarity KATO reports and thresholds. On its general path (a state of two symbols or more)
    RapidFuzz's ``process.extract`` runs a scorer that returns ``2.0 * M / T * 100.0`` (a percentage), and the
    result is divided by 100 again: ``(ratio * 100.0) / 100.0``, which can differ from ``ratio`` in the last
    bit (2/6 gives 0.33333333333333326). Its single-symbol path computes ``2.0 * M / T`` as is."""
    return ratio * 100.0 / 100.0 if state_length > 1 else ratio


def best_fuzzy_token(token: str, pattern: Sequence[str], threshold: float) -> tuple[str, float] | None:
    """The first pattern token with the highest ``fuzz.ratio/100`` at or above the threshold."""
    best: str | None = None
    best_score = 0.0
    for candidate in pattern:
        score = 1.0 if candidate == token else fuzz.ratio(token, candidate) / 100.0
        if score >= threshold and score > best_score:
            best, best_score = candidate, score
    return None if best is None else (best, best_score)


@dataclass
class CandidateMatch:
    """Every per-candidate field KATO derives from one pattern and the state, before corpus statistics."""

    name: str
    events: list[list[str]]
    length: int
    similarity: float
    matches: list[str]
    past: list[list[str]]
    present: list[list[str]]
    future: list[list[str]]
    missing: list[list[str]]
    extras: list[list[str]]
    anomalies: list[dict] = field(default_factory=list)
    number_of_blocks: int = 0
    evidence: float = 0.0
    confidence: float = 0.0
    snr: float = 0.0
    fragmentation: float = -1.0

    @property
    def present_symbols(self) -> list[str]:
        return flatten(self.present)

    @property
    def pre_potential(self) -> float:
        """(evidence + confidence)·snr + 1/(fragmentation+1); the last term is 0 without blocks."""
        return (self.evidence + self.confidence) * self.snr + fragmentation_term(self.fragmentation)


def fragmentation_term(fragmentation: float) -> float:
    return 0.0 if fragmentation == -1.0 else 1.0 / (fragmentation + 1.0)


def split_events(events: list[list[str]], past_len: int, present_len: int, first_match: str | None
                 ) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """Turn flat past/present lengths into whole events, with KATO's fix-up of the last past event."""
    count = 0
    idx = 0
    while count < past_len:
        count += len(events[idx])
        idx += 1
    e1 = idx
    while count < past_len + present_len:
        count += len(events[idx])
        idx += 1
    e1 = fix_up(events, e1, first_match)
    return events[:e1], events[e1:idx], events[idx:]


def fix_up(events: list[list[str]], past_end: int, first_match: str | None) -> int:
    """KATO's fix-up: when the first match sits in the last past event, that event belongs to the present.
    Returns where the past ends (in events) after it."""
    if past_end and first_match is not None and first_match in events[past_end - 1]:
        return past_end - 1
    return past_end


BlockFinder = Callable[[int, int], list[Block]]


def extract(name: str, events: list[list[str]], stm: list[list[str]], cutoff: float,
            use_token_matching: bool = True, fuzzy_token_threshold: float = 0.0, *,
            sim: float | None = None, blocks_of: BlockFinder | None = None) -> CandidateMatch | None:
    """KATO's extraction of one candidate; None when it does not reach ``cutoff``.

    ``sim`` and ``blocks_of(start, end)`` (the blocks of ``pattern[start:end]`` against the state) may be
    supplied by a caller that computes them faster, e.g. compiled over token ids; they must equal
    ``similarity`` and ``matching_blocks``.
    """
    pattern = flatten(events)
    state = flatten(stm)
    if sim is None:
        sim = similarity(pattern, state, use_token_matching)
    if sim < cutoff:
        return None
    if blocks_of is None:
        def blocks_of(start: int, end: int) -> list[Block]:
            return matching_blocks(pattern[start:end], state)
    blocks = blocks_of(0, len(pattern))
    anomalies: list[dict] = []
    fuzzy = fuzzy_token_threshold is not None and fuzzy_token_threshold > 0.0
    if fuzzy:
        matches: list[str] = []
        fuzzy_hits: set[str] = set()
        for token in state:
            hit = best_fuzzy_token(token, pattern, fuzzy_token_threshold)
            if hit is None:
                continue
            fuzzy_hits.add(token)
            matches.append(token)
            if hit[0] != token:
                anomalies.append({"observed": token, "expected": hit[0], "similarity": hit[1]})
    else:
        matches = [s for _, j, n in blocks for s in state[j:j + n]]

    if not blocks and cutoff > 0.0:
        return None
    past_len, present_len = flat_span(blocks, len(pattern))
    if fuzzy:
        flat_extras = sum(1 for token in state if token not in fuzzy_hits)
    else:
        matched = sum(n for _, _, n in blocks_of(past_len, past_len + present_len)) if present_len else 0
        flat_extras = len(state) - matched if present_len else 0
    return assemble(name, events, stm, len(pattern), sim, blocks, matches, flat_extras, anomalies)


def flat_span(blocks: Sequence[Block], length: int) -> tuple[int, int]:
    """Flat (past length, present length): the present runs from the first block to the end of the last;
    without blocks the whole pattern is present."""
    if not blocks:
        return 0, length
    i0 = blocks[0][0]
    i1, _, n1 = blocks[-1]
    return i0, (i1 + n1) - i0


def assemble(name: str, events: list[list[str]], stm: list[list[str]], length: int, sim: float,
             blocks: Sequence[Block], matches: list[str], flat_extras: int,
             anomalies: list[dict] | None = None) -> CandidateMatch:
    """The candidate's fields from its blocks, matches and flat extras count (spec §2.4)."""
    past_len, present_len = flat_span(blocks, length)
    past, present, future = split_events(events, past_len, present_len, matches[0] if matches else None)
    return from_split(name, events, stm, length, sim, len(blocks), matches, flat_extras, (past, present, future),
                      flatten(present), anomalies)


def state_extras(stm: list[list[str]], present_symbols: set[str] | frozenset[str]) -> list[list[str]]:
    """The STM's symbols outside the present, event by event: they depend only on which STM symbols the present
    holds, so candidates that hold the same ones may share them."""
    return [[s for s in event if s not in present_symbols] for event in stm]


def from_split(name: str, events: list[list[str]], stm: list[list[str]], length: int, sim: float, blocks: int,
               matches: list[str], flat_extras: int,
               split: tuple[list[list[str]], list[list[str]], list[list[str]]], present_flat: list[str],
               anomalies: list[dict] | None = None, extras: list[list[str]] | None = None) -> CandidateMatch:
    """The candidate's fields once its events are split into past, present and future (``present_flat``:
    the present's symbols in order). ``extras`` may come from a caller that computed them already
    (``state_extras``)."""
    past, present, future = split
    match_set = set(matches)
    missing = [[s for s in event if s not in match_set] for event in present]
    if extras is None:
        extras = state_extras(stm, set(present_flat))
    m = len(matches)
    n_present = len(present_flat)
    denominator = 2.0 * m + flat_extras
    return CandidateMatch(
        name=name, events=events, length=length, similarity=sim, matches=matches,
        past=past, present=present, future=future, missing=missing, extras=extras, anomalies=anomalies or [],
        number_of_blocks=blocks,
        evidence=float(m / length) if length > 0 else 0.0,
        confidence=float(m / n_present) if n_present > 0 else 0.0,
        snr=float((2.0 * m - flat_extras) / denominator) if denominator > 0 else 0.0,
        fragmentation=float(blocks - 1),
    )
