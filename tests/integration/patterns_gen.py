"""Deterministic synthetic patterns for storage tests and the benchmark's shape."""

from __future__ import annotations

import random

from schema.learning import LearnedPattern
from schema.naming import pattern_hash


def vocabulary(size: int = 1000) -> list[str]:
    return [f"w{i:04d}" for i in range(size)]


def random_patterns(n: int, seed: int = 7, vocab_size: int = 1000) -> list[LearnedPattern]:
    """``n`` distinct patterns of 3–8 events × 1–3 symbols over a ``vocab_size``-word vocabulary."""
    rng = random.Random(seed)
    vocab = vocabulary(vocab_size)
    out: dict[str, LearnedPattern] = {}
    while len(out) < n:
        events = [sorted(rng.sample(vocab, rng.randint(1, 3))) for _ in range(rng.randint(3, 8))]
        name = pattern_hash(events)
        out.setdefault(name, LearnedPattern(name=name, events=events))
    return list(out.values())
