"""Deterministic workloads shaped like KATO's own benchmark (spec §7)."""

from __future__ import annotations

import math

import numpy as np


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
