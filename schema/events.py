"""Events and the short-term memory as KATO shapes them (spec §1.2, §1.3)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MAX_STM_EVENTS = 1000


def build_event(strings: Sequence[str], vector_symbols: Sequence[str] = (), sort: bool = True) -> list[str]:
    """Vector symbols first, then the strings; each group sorted by code point, duplicates kept."""
    vectors = sorted(vector_symbols) if sort else list(vector_symbols)
    symbols = sorted(strings) if sort else list(strings)
    return vectors + symbols


def flatten(events: Iterable[Sequence[str]]) -> list[str]:
    return [symbol for event in events for symbol in event]


def symbol_count(events: Iterable[Sequence[str]]) -> int:
    return sum(len(event) for event in events)


def cap_stm(stm: list[list[str]], limit: int = MAX_STM_EVENTS) -> list[list[str]]:
    """Drop the oldest events beyond the session cap."""
    return stm[-limit:] if len(stm) > limit else stm
