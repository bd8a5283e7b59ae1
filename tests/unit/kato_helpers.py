"""Small helpers that drive the reference KATO like KATO's own test fixture does."""

from __future__ import annotations

import itertools
import json
from typing import Any

from schema.rules.reference_kato import ReferenceKato, ReferenceSession

_counter = itertools.count()


def as_json(value: Any) -> Any:
    """``value`` as it comes back from JSON (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(value))


def new_session(kato: ReferenceKato | None = None, **config) -> ReferenceSession:
    kato = kato or ReferenceKato()
    base = {"max_pattern_length": 0, "recall_threshold": 0.1, "persistence": 5}
    base.update(config)
    return kato.session(f"test_node_{next(_counter)}", base)


def learn_events(session: ReferenceSession, events: list[list[str]], **fields) -> str:
    for event in events:
        session.observe(event, **fields)
    return session.learn()


def observe_events(session: ReferenceSession, events: list[list[str]]) -> None:
    for event in events:
        session.observe(event)


def by_name(predictions: list[dict], name: str) -> dict:
    return next(p for p in predictions if p["name"] == name.removeprefix("PTRN|"))
