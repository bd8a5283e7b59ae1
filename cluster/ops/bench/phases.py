"""Benchmark phases against a running service over HTTP: ingest, prediction load, observe/learn, reference
answers, minhash recall, memory per pattern."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests

from cluster.ops.bench.client import KatoSession, bare, bulk_learn, shard_totals
from cluster.ops.bench.load import run_load, summarize

Pattern = list[list[str]]


def ingest(http: requests.Session, url: str, node: str, patterns: Sequence[Pattern]
           ) -> tuple[dict[str, Any], list[str]]:
    """Bulk ingest rate, and shard memory per pattern (index bytes added / patterns added, from /status)."""
    before_patterns, before_bytes = shard_totals(http, url)
    seconds, names = bulk_learn(http, url, node, list(patterns))
    after_patterns, after_bytes = shard_totals(http, url)
    added = after_patterns - before_patterns
    figures = {"patterns": len(patterns), "seconds": seconds, "patterns_per_s": len(patterns) / seconds}
    memory = {"patterns_added": added, "index_bytes_added": after_bytes - before_bytes,
              "index_bytes_per_pattern": (after_bytes - before_bytes) / added if added else 0.0,
              "index_bytes_total": after_bytes, "patterns_total": after_patterns,
              "index_bytes_per_pattern_total": after_bytes / after_patterns if after_patterns else 0.0}
    return {"ingest": figures, "memory": memory}, names


def prediction_load(url: str, node: str, config: dict[str, Any], queries: Sequence[Pattern],
                    concurrencies: Sequence[int]) -> list[dict[str, Any]]:
    """Latency percentiles and throughput at every concurrency level (Ray tasks; ``ray_load`` must be open)."""
    return [run_load(url, node, config, list(queries), c) for c in concurrencies]


def http_answers(http: requests.Session, url: str, node: str, config: dict[str, Any],
                 queries: Sequence[Pattern]) -> list[dict[str, Any]]:
    """The cluster's full ``/predictions`` bodies for ``queries``, observed event by event in one session."""
    session = KatoSession(http, url, node, config)
    answers = []
    for query in queries:
        session.clear()
        for event in query:
            session.observe(event)
        answers.append(session.predictions()[1])
    return answers


def observe_learn(http: requests.Session, url: str, node: str, config: dict[str, Any],
                  patterns: Sequence[Pattern]) -> dict[str, Any]:
    """Sequential observe latency (observe-time predictions included) and learn latency on the loaded node;
    each pattern is observed event by event and then learned."""
    session = KatoSession(http, url, node, config)
    observe_s: list[float] = []
    learn_s: list[float] = []
    for pattern in patterns:
        session.clear()
        observe_s.extend(session.observe(event) for event in pattern)
        learn_s.append(session.learn())
    return {"observe": summarize(observe_s), "learn": summarize(learn_s)}


def pipeline_found(http: requests.Session, url: str, node: str, config: dict[str, Any],
                   queries: Sequence[Pattern]) -> tuple[list[set[str]], list[float]]:
    """Names each query's predictions return, and the ``/predictions`` latencies (observe-time predictions
    off, the STM sent in one ``observe-sequence``)."""
    session = KatoSession(http, url, node, {**config, "process_predictions": False})
    found, seconds = [], []
    for query in queries:
        session.clear()
        session.observe_sequence(query)
        elapsed, body = session.predictions()
        seconds.append(elapsed)
        found.append({bare(p["name"]) for p in body["predictions"]})
    return found, seconds


def recall_curve(http: requests.Session, url: str, node: str, queries: Sequence[Pattern],
                 truths: dict[float, list[set[str]]], max_predictions: int = 100) -> dict[str, Any]:
    """Recall of the ``["minhash"]`` pipeline with ``minhash_threshold = t`` against the exact truth
    (Jaccard ≥ t) for every t, and of the exact path (no pipeline) against the headline truth."""
    from cluster.ops.bench.baselines import recall

    base = {"recall_threshold": 0.1, "max_predictions": max_predictions}
    curve = []
    for threshold, truth in sorted(truths.items()):
        found, seconds = pipeline_found(http, url, node, {**base, "filter_pipeline": ["minhash"],
                                                          "minhash_threshold": threshold}, queries)
        curve.append({"threshold": threshold, "recall": recall(found, truth),
                      "truth_pairs": sum(map(len, truth)), "found_pairs": sum(map(len, found)),
                      **summarize(seconds)})
    exact, exact_seconds = pipeline_found(http, url, node, base, queries)
    return {"curve": curve, "exact": {"found": exact, **summarize(exact_seconds)}}
