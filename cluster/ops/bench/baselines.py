"""The baselines, on the same corpus and queries as the cluster: KATO's per-pattern reference engine,
datasketch's ``MinHashLSH``, and the exact Jaccard truth the recall figures are measured against."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from cluster.ops.bench.client import bare
from cluster.ops.bench.load import summarize

Pattern = list[list[str]]


def reference_kb(corpus: Sequence[Pattern]):
    """A ``MemoryKB`` holding ``corpus`` learned once each, in order (what ``/bulk/learn`` stores)."""
    from schema.learning import make_pattern
    from schema.rules.memory_kb import MemoryKB

    kb = MemoryKB()
    for pattern in filter(None, map(make_pattern, corpus)):
        kb.learn(pattern, 5)
    return kb


def _normalized(predictions: list[dict[str, Any]], futures: list[dict[str, Any]]) -> Any:
    """JSON round trip (what HTTP delivers) with bare names."""
    body = json.loads(json.dumps({"predictions": predictions, "future_potentials": futures}))
    for p in body["predictions"]:
        p["name"] = bare(p["name"])
    return body


def reference_baseline(corpus: Sequence[Pattern], queries: Sequence[Pattern], config: dict[str, Any],
                       http_answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Time ``schema.rules.reference.predict`` on ``queries`` and compare every answer, field by field,
    with the cluster's HTTP answer to the same query (same names, same order, equal fields)."""
    from schema.rules.query import QueryOptions
    from schema.rules.reference import predict

    kb = reference_kb(corpus)
    options = QueryOptions.from_config(config)
    stats = kb.stats()
    seconds, agree, mismatches = [], [], []
    for i, (query, answer) in enumerate(zip(queries, http_answers)):
        t0 = time.perf_counter()
        predictions, futures = predict(query, kb.items(), stats, options)
        seconds.append(time.perf_counter() - t0)
        expected = _normalized(predictions, futures)
        got = _normalized(answer["predictions"], answer["future_potentials"])
        agree.append(expected == got)
        if expected != got:
            mismatches.append({"query": i, "expected_names": [p["name"] for p in expected["predictions"]][:10],
                               "got_names": [p["name"] for p in got["predictions"]][:10]})
    return {"queries": len(seconds), **summarize(seconds), "agree": bool(agree) and all(agree),
            "agreeing_queries": int(sum(agree)), "mismatches": mismatches[:3],
            "patterns_per_s": len(corpus) / float(np.median(seconds)) if seconds else 0.0}


def token_table(corpus: Sequence[Pattern]) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """Distinct (pattern, token id) pairs of the corpus: (vocabulary, pattern ids, token ids)."""
    flat = [s for events in corpus for e in events for s in e]
    lens = np.fromiter((sum(map(len, events)) for events in corpus), dtype=np.int64, count=len(corpus))
    vocab_list, token_ids = np.unique(np.array(flat, dtype=object).astype(str), return_inverse=True)
    pattern_ids = np.repeat(np.arange(len(corpus), dtype=np.int64), lens)
    pairs = np.unique(pattern_ids * len(vocab_list) + token_ids.ravel())
    vocab = {t: i for i, t in enumerate(vocab_list.tolist())}
    return vocab, pairs // len(vocab_list), pairs % len(vocab_list)


def exact_jaccard(corpus: Sequence[Pattern], queries: Sequence[Pattern]) -> np.ndarray:
    """Exact token-set Jaccard of every query against every pattern, (queries, patterns), vectorized."""
    vocab, pids, tids = token_table(corpus)
    sizes = np.bincount(pids, minlength=len(corpus))
    out = np.zeros((len(queries), len(corpus)))
    for q, query in enumerate(queries):
        tokens = {s for e in query for s in e}
        known = np.array([vocab[t] for t in tokens if t in vocab], dtype=np.int64)
        inter = np.bincount(pids[np.isin(tids, known)], minlength=len(corpus))
        out[q] = inter / (sizes + len(tokens) - inter)
    return out


def truth_sets(jaccard: np.ndarray, names: Sequence[str], threshold: float) -> list[set[str]]:
    """Names of the patterns with exact Jaccard ≥ ``threshold``, per query."""
    return [{names[i] for i in np.flatnonzero(row >= threshold - 1e-12).tolist()} for row in jaccard]


def recall(found: Sequence[set[str]], truth: Sequence[set[str]]) -> float:
    """|found ∩ truth| / |truth| over all queries (1.0 when there is no truth)."""
    total = sum(len(t) for t in truth)
    return sum(len(f & t) for f, t in zip(found, truth)) / total if total else 1.0


def minhash_lsh_baseline(corpus: Sequence[Pattern], names: Sequence[str], queries: Sequence[Pattern],
                         truths: dict[float, list[set[str]]], headline: float = 0.7) -> dict[str, Any]:
    """datasketch ``MinHashLSH`` (num_perm 100, legacy SHA-1 scheme, seed 1) over the same corpus: its own
    signature rate, insert rate (signatures from the vectorized path), query latency and recall at every
    threshold of ``truths``."""
    from datasketch import LeanMinHash, MinHash, MinHashLSH

    from schema.minhash import minhash_signatures

    token_sets = [sorted({s for e in p for s in e}) for p in corpus]
    t0 = time.perf_counter()
    MinHash.bulk([[t.encode("utf8") for t in ts] for ts in token_sets[:2000]], num_perm=100, seed=1,
                 scheme="legacy")
    datasketch_sig_rate = min(2000, len(token_sets)) / (time.perf_counter() - t0)
    signatures = minhash_signatures(token_sets)
    query_sigs = minhash_signatures([sorted({s for e in q for s in e}) for q in queries])
    lean = [LeanMinHash(seed=1, hashvalues=sig, scheme="legacy") for sig in signatures]
    query_lean = [LeanMinHash(seed=1, hashvalues=sig, scheme="legacy") for sig in query_sigs]
    out: dict[str, Any] = {"num_perm": 100, "scheme": "legacy", "threshold": headline, "curve": []}
    for threshold, truth in sorted(truths.items()):
        lsh = MinHashLSH(threshold=threshold, num_perm=100)
        t0 = time.perf_counter()
        with lsh.insertion_session() as session:
            for i, m in enumerate(lean):
                session.insert(i, m, check_duplication=False)
        insert_s = time.perf_counter() - t0
        found, seconds = [], []
        for m in query_lean:
            t0 = time.perf_counter()
            keys = lsh.query(m)
            seconds.append(time.perf_counter() - t0)
            found.append({names[k] for k in keys})
        point = {"threshold": threshold, "recall": recall(found, truth), "insert_per_s": len(lean) / insert_s,
                 **summarize(seconds), "bands_rows": [int(lsh.b), int(lsh.r)]}
        out["curve"].append(point)
        if abs(threshold - headline) < 1e-9:
            out.update({k: point[k] for k in ("recall", "insert_per_s", "p50_ms", "p95_ms", "p99_ms", "mean_ms")})
    out["signatures_per_s_datasketch"] = datasketch_sig_rate
    return out
