"""Deterministic benchmark workloads: KATO's standard shapes (spec §7), zipf and near-duplicate families."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WORKLOADS = ("standard", "zipf", "neardup")
ZIPF_A = 1.1
ZIPF_VOCABULARY = 50_000
NEARDUP_COPIES = 9
NEARDUP_LENGTH = 20
NEARDUP_SUBSTITUTIONS = 4
STANDARD_CONFIG: dict[str, Any] = {"recall_threshold": 0.1, "max_predictions": 100}

Pattern = list[list[str]]


def standard_patterns(n: int, seed: int = 0, vocabulary: int = 1000, min_events: int = 3, max_events: int = 8,
                      max_symbols: int = 3) -> list[list[list[str]]]:
    """Patterns of 3–8 events × 1–3 symbols from ``word_0..word_{vocabulary-1}``; events sorted like KATO's."""
    rng = np.random.default_rng(seed)
    words = np.array([f"word_{i}" for i in range(vocabulary)])
    n_events = rng.integers(min_events, max_events + 1, size=n)
    sizes = rng.integers(1, max_symbols + 1, size=int(n_events.sum()))
    symbols = words[rng.integers(0, vocabulary, size=int(sizes.sum()))].tolist()
    patterns: list[list[list[str]]] = []
    s = e = 0
    for count in n_events.tolist():
        events = []
        for size in sizes[e:e + count].tolist():
            events.append(sorted(symbols[s:s + size]))
            s += size
        e += count
        patterns.append(events)
    return patterns


def standard_queries(patterns: list[list[list[str]]], q: int, seed: int = 1, fraction: float = 0.6
                     ) -> list[list[list[str]]]:
    """The first 60 % of the events of randomly chosen learned patterns (at least one event)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(patterns), size=q).tolist()
    return [patterns[i][:max(1, math.ceil(len(patterns[i]) * fraction))] for i in picks]


def near_duplicate_patterns(bases: int, copies: int, length: int = 20, substitutions: int = 1, seed: int = 0,
                            vocabulary: int = 50_000) -> list[list[list[str]]]:
    """Families of near-duplicates for the ``minhash`` pipeline: a base pattern of ``length`` single-symbol
    events and ``copies`` variants with up to ``substitutions`` symbols replaced."""
    rng = np.random.default_rng(seed)
    corpus: list[list[list[str]]] = []
    for _ in range(bases):
        base = [f"word_{i}" for i in rng.choice(vocabulary, size=length, replace=False).tolist()]
        corpus.append([[s] for s in base])
        for _ in range(copies):
            variant = list(base)
            for pos in rng.choice(length, size=int(rng.integers(0, substitutions + 1)), replace=False).tolist():
                variant[pos] = f"word_{int(rng.integers(vocabulary))}"
            corpus.append([[s] for s in variant])
    return corpus


@dataclass
class Workload:
    """A corpus (the largest size; smaller sizes are its prefixes), how to query it, and its parameters."""

    name: str
    corpus: list[Pattern]
    config: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    def queries(self, size: int, q: int, seed: int) -> list[Pattern]:
        """``q`` queries over the first ``size`` patterns: 60 % prefixes, or whole patterns for neardup."""
        corpus = self.corpus[:size]
        if self.name == "neardup":
            picks = np.random.default_rng(seed).integers(0, len(corpus), size=q).tolist()
            return [corpus[i] for i in picks]
        return standard_queries(corpus, q, seed=seed)


def zipf_patterns(n: int, seed: int = 0, vocabulary: int = ZIPF_VOCABULARY, a: float = ZIPF_A,
                  min_events: int = 3, max_events: int = 8, max_symbols: int = 3) -> list[Pattern]:
    """Standard shapes (3–8 events × 1–3 symbols, events sorted) over a large vocabulary whose words are
    drawn from a truncated Zipf law, p(rank k) ∝ k^-a for k = 1..vocabulary (numpy's unbounded
    ``zipf`` would pile a third of the draws on the clipping edge at a = 1.1)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, vocabulary + 1, dtype=np.float64) ** -a
    words = np.array([f"word_{i}" for i in range(vocabulary)])
    n_events = rng.integers(min_events, max_events + 1, size=n)
    sizes = rng.integers(1, max_symbols + 1, size=int(n_events.sum()))
    symbols = words[rng.choice(vocabulary, size=int(sizes.sum()), p=weights / weights.sum())].tolist()
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    events = [sorted(symbols[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    cuts = np.concatenate([[0], np.cumsum(n_events)]).tolist()
    return [events[lo:hi] for lo, hi in zip(cuts[:-1], cuts[1:])]


def neardup_corpus(n: int, seed: int = 0) -> list[Pattern]:
    """About ``n`` patterns in families of ``NEARDUP_COPIES + 1`` near-duplicates (20 single-symbol events,
    up to 4 substitutions, so Jaccard within a family spreads over 0.4–1.0)."""
    bases = max(1, -(-n // (NEARDUP_COPIES + 1)))
    return near_duplicate_patterns(bases, NEARDUP_COPIES, length=NEARDUP_LENGTH,
                                   substitutions=NEARDUP_SUBSTITUTIONS, seed=seed)[:n]


def build_workload(name: str, size: int, seed: int) -> Workload:
    """The workload ``name`` with ``size`` patterns, deterministic from ``seed``."""
    if name == "standard":
        return Workload(name, standard_patterns(size, seed=seed), dict(STANDARD_CONFIG),
                        {"vocabulary": 1000, "events": [3, 8], "symbols_per_event": [1, 3], "query_fraction": 0.6})
    if name == "zipf":
        return Workload(name, zipf_patterns(size, seed=seed), dict(STANDARD_CONFIG),
                        {"vocabulary": ZIPF_VOCABULARY, "zipf_a": ZIPF_A, "events": [3, 8],
                         "symbols_per_event": [1, 3], "query_fraction": 0.6})
    if name == "neardup":
        return Workload(name, neardup_corpus(size, seed=seed), {**STANDARD_CONFIG, "filter_pipeline": ["minhash"]},
                        neardup_params())
    raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")


def neardup_params() -> dict[str, Any]:
    return {"vocabulary": 50_000, "copies": NEARDUP_COPIES, "length": NEARDUP_LENGTH,
            "substitutions": NEARDUP_SUBSTITUTIONS, "queries": "learned patterns"}
