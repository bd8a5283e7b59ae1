"""An in-memory knowledge base with KATO's learn rules: the oracle the Redis/ClickHouse stack is tested
against, and the store of the engine demo."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schema.learning import LearnedPattern, merge_metadata, trim_emotives
from schema.rules.metrics import CorpusStats, PatternIntrinsics, pattern_intrinsics


@dataclass
class MemoryKB:
    patterns: dict[str, list[list[str]]] = field(default_factory=dict)
    frequency: dict[str, int] = field(default_factory=dict)
    emotives: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    metadata: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    symbol_freq: dict[str, int] = field(default_factory=dict)
    pmf: dict[str, int] = field(default_factory=dict)
    affinity: dict[str, dict[str, float]] = field(default_factory=dict)
    intrinsics: dict[str, PatternIntrinsics] = field(default_factory=dict)
    total_symbols_in_patterns_frequencies: int = 0
    total_pattern_frequencies: int = 0
    total_unique_patterns: int = 0

    def learn(self, p: LearnedPattern, persistence: int) -> bool:
        """Store one learn; True when the pattern is new."""
        new = p.name not in self.frequency
        if new:
            self.frequency[p.name] = p.repeats
            self.patterns[p.name] = p.events
            self.emotives[p.name] = trim_emotives(p.emotives, persistence)
            self.metadata[p.name] = dict(p.metadata)
            for symbol in p.symbol_counts:
                self.pmf[symbol] = self.pmf.get(symbol, 0) + 1
            self.total_pattern_frequencies += 1
            self.total_unique_patterns += 1
        else:
            self.frequency[p.name] += p.repeats
            if p.emotives or p.metadata:
                self.emotives[p.name] = trim_emotives([*self.emotives.get(p.name, []), *p.emotives], persistence)
                self.metadata[p.name] = merge_metadata(self.metadata.get(p.name, {}), p.metadata)
        for symbol, count in p.symbol_counts.items():
            self.symbol_freq[symbol] = self.symbol_freq.get(symbol, 0) + count * p.repeats
        self.total_symbols_in_patterns_frequencies += p.length * p.repeats
        for emotive, value in p.affinity_delta.items():
            for symbol in p.symbol_counts:
                per_symbol = self.affinity.setdefault(symbol, {})
                per_symbol[emotive] = per_symbol.get(emotive, 0.0) + value
        return new

    def items(self) -> Iterable[tuple[str, list[list[str]]]]:
        return self.patterns.items()

    def stats(self) -> CorpusStats:
        return CorpusStats(
            total_symbols=len(self.symbol_freq),
            total_unique_patterns=self.total_unique_patterns,
            total_pattern_frequencies=self.total_pattern_frequencies,
            pmf=self.pmf, symbol_freq=self.symbol_freq, frequencies=self.frequency,
            emotives=self.emotives, intrinsics=self.intrinsics, affinity=self.affinity,
        )

    def finalize_training(self) -> int:
        for name, events in self.patterns.items():
            self.intrinsics[name] = pattern_intrinsics(events, self.pmf, len(self.symbol_freq),
                                                       self.total_unique_patterns)
        return len(self.patterns)
