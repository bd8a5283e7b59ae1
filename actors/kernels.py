"""Compiled scoring kernels over whole candidate arrays (numba).

Patterns live as flat int32 token ids with offsets; events as flat sizes with offsets. For every candidate
the kernels compute what KATO's extraction needs to decide the threshold and the pre-potential: similarity
(token LCS), difflib-identical matching blocks, matches, flat past/present lengths, the flat diff extras,
the event split with KATO's fix-up, and the pre-potential. Ranking reads most candidates from their posting
entries alone (``posting_rank``); the local top then gets its blocks and extras (``candidate_blocks``), from
which ``actors.compact`` assembles the full fields of the candidates the predictor keeps.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from actors.kb_index import EVENT_SIZE_ESCAPE, REPEATED


@njit(cache=True, nogil=True)
def _lcs_into(a, b, prev, cur):
    """LCS length using the caller's two rows (each at least len(b) + 1 long)."""
    la, lb = a.shape[0], b.shape[0]
    if la == 0 or lb == 0:
        return 0
    for j in range(lb + 1):
        prev[j] = 0
    cur[0] = 0
    for i in range(la):
        ai = a[i]
        for j in range(lb):
            if ai == b[j]:
                cur[j + 1] = prev[j] + 1
            else:
                cur[j + 1] = cur[j] if cur[j] > prev[j + 1] else prev[j + 1]
        prev, cur = cur, prev
    return prev[lb]


@njit(cache=True, nogil=True)
def lcs_length(a: np.ndarray, b: np.ndarray) -> int:
    return _lcs_into(a, b, np.zeros(b.shape[0] + 1, np.int32), np.zeros(b.shape[0] + 1, np.int32))


@njit(cache=True, nogil=True)
def _longest_match(a, b, alo, ahi, blo, bhi, prev, cur):
    """difflib's find_longest_match without junk: the first (i, j) in i-major order of a longest block."""
    besti, bestj, bestsize = alo, blo, 0
    for j in range(blo, bhi + 1):
        prev[j] = 0
    for i in range(alo, ahi):
        ai = a[i]
        cur[blo] = 0
        for j in range(blo, bhi):
            if ai == b[j]:
                k = prev[j] + 1
                cur[j + 1] = k
                if k > bestsize:
                    besti, bestj, bestsize = i - k + 1, j - k + 1, k
            else:
                cur[j + 1] = 0
        for j in range(blo, bhi + 1):
            prev[j] = cur[j]
    return besti, bestj, bestsize


@njit(cache=True, nogil=True)
def _scratch(lb):
    return (np.zeros(lb + 2, np.int32), np.zeros(lb + 2, np.int32), np.empty((2 * (lb + 1) + 2, 4), np.int64),
            np.empty((lb + 1, 3), np.int64))


@njit(cache=True, nogil=True)
def _block_work(ls):
    """Everything a per-candidate loop over blocks needs against a state of ``ls`` tokens: rows for the
    candidate's blocks and for its present's, and ``_scratch``."""
    prev, cur, stack, found = _scratch(ls)
    return np.empty((ls + 1, 3), np.int64), np.empty((ls + 1, 3), np.int64), prev, cur, stack, found


@njit(cache=True, nogil=True)
def _blocks_into(a, b, out, prev, cur, stack, found):
    """difflib's matching blocks of a and b into ``out``, with caller-owned work arrays sized by ``_scratch``."""
    la, lb = a.shape[0], b.shape[0]
    nfound = 0
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, la, 0, lb
    top = 1
    while top > 0:
        top -= 1
        alo, ahi, blo, bhi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        i, j, k = _longest_match(a, b, alo, ahi, blo, bhi, prev, cur)
        if k:
            found[nfound, 0], found[nfound, 1], found[nfound, 2] = i, j, k
            nfound += 1
            if alo < i and blo < j:
                stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = alo, i, blo, j
                top += 1
            if i + k < ahi and j + k < bhi:
                stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = i + k, ahi, j + k, bhi
                top += 1
    for x in range(1, nfound):  # insertion sort by i (blocks never share an i; there are few)
        i2, j2, k2 = found[x, 0], found[x, 1], found[x, 2]
        y = x - 1
        while y >= 0 and found[y, 0] > i2:
            found[y + 1, 0], found[y + 1, 1], found[y + 1, 2] = found[y, 0], found[y, 1], found[y, 2]
            y -= 1
        found[y + 1, 0], found[y + 1, 1], found[y + 1, 2] = i2, j2, k2
    k_out = 0
    i1 = j1 = k1 = 0
    for idx in range(nfound):
        i2, j2, k2 = found[idx, 0], found[idx, 1], found[idx, 2]
        if i1 + k1 == i2 and j1 + k1 == j2:
            k1 += k2
        else:
            if k1:
                out[k_out, 0], out[k_out, 1], out[k_out, 2] = i1, j1, k1
                k_out += 1
            i1, j1, k1 = i2, j2, k2
    if k1:
        out[k_out, 0], out[k_out, 1], out[k_out, 2] = i1, j1, k1
        k_out += 1
    return k_out


@njit(cache=True, nogil=True)
def matching_blocks(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> int:
    """Blocks of difflib.SequenceMatcher(None, a, b, autojunk=False) into ``out`` (rows i, j, n); returns k."""
    prev, cur, stack, found = _scratch(b.shape[0])
    return _blocks_into(a, b, out, prev, cur, stack, found)


@njit(cache=True, nogil=True)
def token_similarities(tokens, offsets, candidates, state, ranked):
    """2·LCS/(|P|+|S|) for every candidate: as KATO ranks it (``ranked``: ``_token_similarity``) or as is, the
    value its rapidfuzz filter stage compares (spec §3.2)."""
    n = candidates.shape[0]
    out = np.empty(n, np.float64)
    ls = state.shape[0]
    prev, cur, _stack, _found = _scratch(ls)
    for c in range(n):
        p = candidates[c]
        pat = tokens[offsets[p]:offsets[p + 1]]
        total = pat.shape[0] + ls
        raw = (2.0 * _lcs_into(pat, state, prev, cur) / total) if total > 0 else 0.0
        out[c] = _kato_scaled(raw, ls) if ranked else raw
    return out


@njit(cache=True, nogil=True)
def _present_count(tokens, offsets, ev_sizes, ev_offsets, p, past_len, present_len, first):
    """Symbols of the events holding the present, with KATO's fix-up for a match in the last past event."""
    e0 = ev_offsets[p]
    count = 0
    idx = 0
    while count < past_len:
        count += ev_sizes[e0 + idx]
        idx += 1
    e1 = idx
    past_count = count
    while count < past_len + present_len:
        count += ev_sizes[e0 + idx]
        idx += 1
    present_count = count - past_count
    if e1 > 0 and first >= 0:
        start = offsets[p] + past_count - ev_sizes[e0 + e1 - 1]
        for t in range(ev_sizes[e0 + e1 - 1]):
            if tokens[start + t] == first:
                present_count += ev_sizes[e0 + e1 - 1]
                break
    return present_count


@njit(cache=True, nogil=True)
def _metrics(m, lp, present_count, extras, k):
    """(evidence, confidence, snr, pre-potential) exactly as the reference extraction computes them."""
    ev = float(m / lp) if lp > 0 else 0.0
    conf = float(m / present_count) if present_count > 0 else 0.0
    denominator = 2.0 * m + extras
    snr = float((2.0 * m - extras) / denominator) if denominator > 0 else 0.0
    frag = float(k - 1)
    f = 0.0 if frag == -1.0 else 1.0 / (frag + 1.0)
    return ev, conf, snr, (ev + conf) * snr + f


@njit(cache=True, nogil=True)
def _kato_scaled(sim, ls):
    """``schema.rules.matching.kato_similarity``: on the general path (a state of two symbols or more) KATO
    scores 2·LCS/T as a percentage for RapidFuzz and divides it by 100 again, which can move the last bit."""
    return sim * 100.0 / 100.0 if ls > 1 else sim


@njit(cache=True, nogil=True)
def _token_similarity(pat, state, prev, cur):
    """KATO's similarity 2·LCS/(|P|+|S|) (``_kato_scaled``), with the caller's LCS rows."""
    total = pat.shape[0] + state.shape[0]
    return _kato_scaled(2.0 * _lcs_into(pat, state, prev, cur) / total, state.shape[0]) if total > 0 else 0.0


@njit(cache=True, nogil=True)
def _flat_span(blocks, k, lp):
    """Flat (past length, present length): first block to the end of the last; no blocks: all present."""
    if k >= 1:
        return blocks[0, 0], blocks[k - 1, 0] + blocks[k - 1, 2] - blocks[0, 0]
    return 0, lp


@njit(cache=True, nogil=True)
def _block_matches(state, blocks, k):
    """Matched symbols m and the first matched state token (-1 without blocks), exact tokens."""
    m = 0
    for b in range(k):
        m += blocks[b, 2]
    return m, (state[blocks[0, 1]] if k > 0 else -1)


@njit(cache=True, nogil=True)
def _single_hit_similarity(lp, ls):
    """Similarity of a pattern with one state-token position (LCS 1)."""
    return _kato_scaled(2.0 * 1 / (lp + ls), ls)


@njit(cache=True, nogil=True)
def _single_hit_pre(lp, ls, present_count):
    """Pre-potential of a pattern with one state-token position: one block of 1, the other tokens extras."""
    return _metrics(1, lp, present_count, ls - 1, 1)[3]


@njit(cache=True, nogil=True)
def _block_extras(pat, state, blocks, k, past_len, present_len, sub_blocks, prev, cur, stack, found):
    """Flat extras: state tokens the present does not match (difflib over the present and the state)."""
    ls = state.shape[0]
    if k == 1:
        # present is exactly the one block, which occurs whole in the state: difflib matches all of it
        return ls - blocks[0, 2]
    if present_len > 0:
        sub = pat[past_len:past_len + present_len]
        ks = _blocks_into(sub, state, sub_blocks, prev, cur, stack, found)
        matched = 0
        for b in range(ks):
            matched += sub_blocks[b, 2]
        return ls - matched
    return 0


@njit(cache=True, nogil=True)
def candidate_fields(tokens, offsets, ev_sizes, ev_offsets, candidates, state, fuzzy_hit, use_fuzzy):
    """Per candidate: blocks k, matches m, flat extras, present symbol count, evidence, confidence, snr, pre.

    ``fuzzy_hit[s, v]`` says whether state token s fuzzily matches shard token v (fuzzy mode only).
    Returns (k, m, n_present, evidence, confidence, snr, pre_potential) arrays.
    """
    n = candidates.shape[0]
    ls = state.shape[0]
    k_arr = np.empty(n, np.int64)
    m_arr = np.empty(n, np.int64)
    np_arr = np.empty(n, np.int64)
    ev = np.empty(n, np.float64)
    conf = np.empty(n, np.float64)
    snr = np.empty(n, np.float64)
    pre = np.empty(n, np.float64)
    blocks, sub_blocks, prev, cur, stack, found = _block_work(ls)
    for c in range(n):
        p = candidates[c]
        pat = tokens[offsets[p]:offsets[p + 1]]
        lp = pat.shape[0]
        k = _blocks_into(pat, state, blocks, prev, cur, stack, found)
        if use_fuzzy:
            m = 0
            first = -1  # the first matched state token; unknown tokens have negative ids and never fix up
            for s in range(ls):
                hit = False
                for t in range(lp):
                    if fuzzy_hit[s, pat[t]]:
                        hit = True
                        break
                if hit:
                    if m == 0:
                        first = state[s]
                    m += 1
        else:
            m, first = _block_matches(state, blocks, k)
        past_len, present_len = _flat_span(blocks, k, lp)
        extras = ls - m if use_fuzzy else _block_extras(pat, state, blocks, k, past_len, present_len, sub_blocks,
                                                         prev, cur, stack, found)
        present_count = _present_count(tokens, offsets, ev_sizes, ev_offsets, p, past_len, present_len, first)
        k_arr[c] = k
        m_arr[c] = m
        np_arr[c] = present_count
        ev[c], conf[c], snr[c], pre[c] = _metrics(m, lp, present_count, extras, k)
    return k_arr, m_arr, np_arr, ev, conf, snr, pre


@njit(cache=True, nogil=True)
def token_rank(tokens, offsets, ev_sizes, ev_offsets, candidates, state, first_in_state, cutoff):
    """Token-mode ranking keys in one pass: (kept, similarity, pre-potential) for every candidate.

    ``first_in_state[v]`` is the first state position of shard token v, or -1. A candidate with exactly one
    pattern position whose token is in the state has LCS 1 and the single block (that position, the token's
    first state position, 1); most candidates of a large corpus are such, and skip the LCS and block
    computations. The rest go through the general kernels. Kept means similarity ≥ cutoff and, when the
    cutoff is positive, at least one block: the candidates the reference engine keeps.
    """
    n = candidates.shape[0]
    ls = state.shape[0]
    kept = np.zeros(n, np.bool_)
    sims = np.zeros(n, np.float64)
    pre = np.zeros(n, np.float64)
    blocks, sub_blocks, prev, cur, stack, found = _block_work(ls)
    for c in range(n):
        p = candidates[c]
        pat = tokens[offsets[p]:offsets[p + 1]]
        lp = pat.shape[0]
        hits = 0
        hit_at = -1
        for i in range(lp):
            if first_in_state[pat[i]] >= 0:
                hits += 1
                if hit_at < 0:
                    hit_at = i
        if hits == 1:
            sim = _single_hit_similarity(lp, ls)
            if sim >= cutoff:
                first = state[first_in_state[pat[hit_at]]]
                kept[c] = True
                sims[c] = sim
                pre[c] = _single_hit_pre(lp, ls, _present_count(tokens, offsets, ev_sizes, ev_offsets, p, hit_at,
                                                                1, first))
            continue
        sim = _token_similarity(pat, state, prev, cur)
        if sim < cutoff:
            continue
        k = _blocks_into(pat, state, blocks, prev, cur, stack, found)
        if k == 0 and cutoff > 0.0:
            continue
        m, first = _block_matches(state, blocks, k)
        past_len, present_len = _flat_span(blocks, k, lp)
        extras = _block_extras(pat, state, blocks, k, past_len, present_len, sub_blocks, prev, cur, stack, found)
        present_count = _present_count(tokens, offsets, ev_sizes, ev_offsets, p, past_len, present_len, first)
        kept[c] = True
        sims[c] = sim
        pre[c] = _metrics(m, lp, present_count, extras, k)[3]
    return kept, sims, pre


@njit(cache=True, nogil=True)
def posting_rank(patterns, details, offsets, n_patterns, ls, cutoff):
    """Score, from the postings of the state's tokens alone, every pattern with exactly one state-token position.

    The arguments are the concatenated posting entries (``kb_index.POSTING`` fields) of the distinct known state
    tokens and the KB's token offsets. Such a pattern has LCS 1 and one block; its present is the event holding
    that position, so its similarity and pre-potential follow from the entry and the pattern's length. Returns
    (ids, similarities, pre-potentials) of those reaching ``cutoff``, and the ids of the other patterns sharing
    a token (for the general kernels), among them those whose entry's event size is the escape value.
    """
    hits = np.zeros(n_patterns, np.int32)
    n = patterns.shape[0]
    for e in range(n):
        hits[patterns[e]] += 2 if details[e] & REPEATED else 1
    ids = np.empty(n, np.int64)
    sims = np.empty(n, np.float64)
    pre = np.empty(n, np.float64)
    general = np.empty(n, np.int64)
    n_single = 0
    n_general = 0
    for e in range(n):
        p = patterns[e]
        h = hits[p]
        size = details[e] & EVENT_SIZE_ESCAPE
        if h == 1 and size != EVENT_SIZE_ESCAPE:
            length = np.int64(offsets[p + 1]) - np.int64(offsets[p])
            sim = _single_hit_similarity(length, ls)
            if sim >= cutoff:
                ids[n_single] = p
                sims[n_single] = sim
                pre[n_single] = _single_hit_pre(length, ls, np.int64(size))
                n_single += 1
        elif h >= 1:
            general[n_general] = p
            n_general += 1
            hits[p] = -1
    return ids[:n_single], sims[:n_single], pre[:n_single], np.sort(general[:n_general])


@njit(cache=True, nogil=True)
def candidate_blocks(tokens, offsets, candidates, state):
    """What the extraction of each candidate needs from the token ids, in one pass (token mode).

    Returns similarities, the matching blocks of every candidate stacked (rows i, j, n; candidate c owns rows
    ``starts[c]:starts[c + 1]``) and the flat extras count.
    """
    n = candidates.shape[0]
    ls = state.shape[0]
    sims = np.empty(n, np.float64)
    extras = np.empty(n, np.int64)
    starts = np.zeros(n + 1, np.int64)
    rows = np.empty((n * (ls + 1), 3), np.int64)
    blocks, sub_blocks, prev, cur, stack, found = _block_work(ls)
    for c in range(n):
        p = candidates[c]
        pat = tokens[offsets[p]:offsets[p + 1]]
        lp = pat.shape[0]
        sims[c] = _token_similarity(pat, state, prev, cur)
        k = _blocks_into(pat, state, blocks, prev, cur, stack, found)
        past_len, present_len = _flat_span(blocks, k, lp)
        extras[c] = _block_extras(pat, state, blocks, k, past_len, present_len, sub_blocks, prev, cur, stack,
                                  found)
        at = starts[c]
        for b in range(k):
            rows[at + b, 0], rows[at + b, 1], rows[at + b, 2] = blocks[b, 0], blocks[b, 1], blocks[b, 2]
        starts[c + 1] = at + k
    return sims, rows[:starts[n]], starts, extras
