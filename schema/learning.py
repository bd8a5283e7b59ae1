"""What a learn stores (spec §1.5–§1.8), as plain data that every statistics backend applies the same way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from schema.events import flatten
from schema.naming import pattern_hash

MIN_PATTERN_SYMBOLS = 2


@dataclass(frozen=True)
class LearnedPattern:
    """One learn of one pattern: the row to store and the statistics it adds."""

    name: str  # bare 40-hex hash
    events: list[list[str]]
    emotives: list[dict[str, float]] = field(default_factory=list)
    metadata: dict[str, list[str]] = field(default_factory=dict)
    repeats: int = 1  # this learn, made this many times in a row (only without emotives/metadata)

    def __post_init__(self) -> None:
        if self.repeats < 1 or (self.repeats > 1 and (self.emotives or self.metadata)):
            raise ValueError("repeats must be >= 1, and > 1 only for learns without emotives or metadata")

    @cached_property
    def symbols(self) -> list[str]:
        """Computed once per pattern (a batch of learns reads them several times); ``events`` is not changed."""
        return flatten(self.events)

    @property
    def length(self) -> int:
        return len(self.symbols)

    @cached_property
    def symbol_counts(self) -> Counter:
        return Counter(self.symbols)

    @property
    def affinity_delta(self) -> dict[str, float]:
        """Mean of each emotive over this learn's entries, added to every distinct symbol's affinity."""
        return average_emotives(self.emotives)

    @property
    def first_token(self) -> str:
        return self.events[0][0] if self.events and self.events[0] else ""

    @property
    def last_token(self) -> str:
        return self.events[-1][-1] if self.events and self.events[-1] else ""


def accumulate_metadata(records: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Each key maps to the sorted unique ``str()`` of every value seen (``True`` → ``'True'``)."""
    seen: dict[str, set[str]] = {}
    for record in records:
        for key, value in record.items():
            seen.setdefault(key, set()).add(str(value))
    return {key: sorted(values) for key, values in seen.items()}


def merge_metadata(stored: Mapping[str, Sequence[str]], new: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    merged = {key: set(values) for key, values in stored.items()}
    for key, values in new.items():
        merged.setdefault(key, set()).update(values)
    return {key: sorted(values) for key, values in merged.items()}


def trim_emotives(entries: Sequence[Mapping[str, float]], persistence: int) -> list[dict[str, float]]:
    return [dict(e) for e in entries[-persistence:]] if persistence > 0 else []


def average_emotives(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the arithmetic mean over the entries that contain it (spec §1.7)."""
    values: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            values.setdefault(key, []).append(value)
    return {key: float(sum(v) / len(v)) for key, v in values.items()}


def make_pattern(stm: Sequence[Sequence[str]], emotives: Sequence[Mapping[str, float]] = (),
                 metadata: Sequence[Mapping[str, Any]] = ()) -> LearnedPattern | None:
    """The pattern a learn of this STM creates, or None below the two-symbol minimum."""
    events = [list(event) for event in stm]
    if sum(len(e) for e in events) < MIN_PATTERN_SYMBOLS:
        return None
    return LearnedPattern(name=pattern_hash(events), events=events,
                          emotives=[dict(e) for e in emotives if e],
                          metadata=accumulate_metadata([m for m in metadata if m]))
