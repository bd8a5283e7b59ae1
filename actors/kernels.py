"""Compiled scoring kernels over whole candidate arrays (numba).

Patterns live as flat int32 token ids with offsets; events as flat sizes with offsets. For every candidate
the kernels compute what KATO's extraction needs to decide the threshold and the pre-potential: similarity
(token LCS), difflib-identical matching blocks, matches, flat past/present lengths, the flat diff extras,
the event split with KATO's fix-up, and the pre-potential. The full per-candidate fields are then built by
``actors.matching.extract`` for the few candidates that survive the local top-K.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def lcs_length(a: np.ndarray, b: np.ndarray) -> int:
    la, lb = a.shape[0], b.shape[0]
    if la == 0 or lb == 0:
        return 0
    prev = np.zeros(lb + 1, np.int32)
    cur = np.zeros(lb + 1, np.int32)
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
def matching_blocks(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> int:
    """Blocks of difflib.SequenceMatcher(None, a, b, autojunk=False) into ``out`` (rows i, j, n); returns k."""
    la, lb = a.shape[0], b.shape[0]
    prev = np.zeros(lb + 2, np.int32)
    cur = np.zeros(lb + 2, np.int32)
    stack = np.empty((2 * (min(la, lb) + 1) + 2, 4), np.int64)
    found = np.empty((min(la, lb) + 1, 3), np.int64)
    nfound = 0
    top = 0
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
    order = np.argsort(found[:nfound, 0])
    k_out = 0
    i1 = j1 = k1 = 0
    for idx in range(nfound):
        i2, j2, k2 = found[order[idx], 0], found[order[idx], 1], found[order[idx], 2]
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
def token_similarities(tokens, offsets, candidates, state):
    """2·LCS/(|P|+|S|) for every candidate."""
    n = candidates.shape[0]
    out = np.empty(n, np.float64)
    ls = state.shape[0]
    for c in range(n):
        p = candidates[c]
        pat = tokens[offsets[p]:offsets[p + 1]]
        total = pat.shape[0] + ls
        out[c] = (2.0 * lcs_length(pat, state) / total) if total > 0 else 0.0
    return out


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
    for c in range(n):
        p = candidates[c]
        pat = tokens[offsets[p]:offsets[p + 1]]
        lp = pat.shape[0]
        blocks = np.empty((min(lp, ls) + 1, 3), np.int64)
        k = matching_blocks(pat, state, blocks)
        if use_fuzzy:
            m = 0
            first = -1
            for s in range(ls):
                hit = False
                for t in range(lp):
                    if fuzzy_hit[s, pat[t]]:
                        hit = True
                        break
                if hit:
                    if first < 0:
                        first = state[s]
                    m += 1
        else:
            m = 0
            for b in range(k):
                m += blocks[b, 2]
            first = state[blocks[0, 1]] if k > 0 else -1
        if k >= 1:
            past_len = blocks[0, 0]
            present_len = blocks[k - 1, 0] + blocks[k - 1, 2] - blocks[0, 0]
        else:
            past_len = 0
            present_len = lp
        if use_fuzzy:
            extras = ls - m
        elif k == 1:
            # present is exactly the one block, which occurs whole in the state: difflib matches all of it
            extras = ls - blocks[0, 2]
        elif present_len > 0:
            sub = pat[past_len:past_len + present_len]
            sub_blocks = np.empty((min(present_len, ls) + 1, 3), np.int64)
            ks = matching_blocks(sub, state, sub_blocks)
            matched = 0
            for b in range(ks):
                matched += sub_blocks[b, 2]
            extras = ls - matched
        else:
            extras = 0
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
        k_arr[c] = k
        m_arr[c] = m
        np_arr[c] = present_count
        ev[c] = float(m / lp) if lp > 0 else 0.0
        conf[c] = float(m / present_count) if present_count > 0 else 0.0
        denominator = 2.0 * m + extras
        snr[c] = float((2.0 * m - extras) / denominator) if denominator > 0 else 0.0
        frag = float(k - 1)
        f = 0.0 if frag == -1.0 else 1.0 / (frag + 1.0)
        pre[c] = (ev[c] + conf[c]) * snr[c] + f
    return k_arr, m_arr, np_arr, ev, conf, snr, pre
