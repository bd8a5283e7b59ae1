"""What observe, learn and observe-sequence do to a session (spec §1.2–§1.10), independent of storage.

The knowledge base is reached through ``KnowledgeBackend``: the in-memory reference, or the cluster.
Project stances (spec §8): observe-time predictions use the session config (Q4), learn resets the
accumulators (Q5), auto-learn uses them (Q6), the session's ``persistence`` is honoured (Q2).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schema.api import ObservationData, ObservationSequenceRequest
from schema.errors import EmptySTMError
from schema.events import build_event, cap_stm
from schema.learning import LearnedPattern, average_emotives, make_pattern
from schema.naming import PATTERN_PREFIX, vector_name_of, vector_sum
from schema.rules.query import QueryOptions
from schema.session import SessionState


@dataclass(frozen=True)
class PendingView:
    """A session's observe whose predictions are still pending (its record id): a learn keeps the KB as that
    observe saw it, for those predictions."""

    session_id: str
    record: str


class KnowledgeBackend(Protocol):
    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int, view: PendingView | None = None
              ) -> None:
        """``view``: the learning session's observe whose predictions were deferred (``defer_predictions``); the
        backend keeps the KB as that observe saw it, for them."""
        ...

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]: ...

    def vector_symbols(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        """The observation's own symbol plus the names of the nearest indexed vectors; then the vector is
        buffered on the node until its next learn (spec §5.2)."""
        ...

    def flush_vectors(self, kb_id: str) -> None:
        """Index the node's buffered vectors and empty the buffer (spec §5.3)."""
        ...


def _capped(entries: list, limit: int) -> list:
    return entries[-limit:] if len(entries) > limit else entries


def learn(state: SessionState, config: Mapping[str, Any], backend: KnowledgeBackend, kb_id: str) -> str:
    """Explicit learn: the whole STM; returns ``PTRN|<hash>`` or ``""``. STM and accumulators are reset."""
    if not state.stm:
        raise EmptySTMError("Cannot learn from empty STM")
    return _learn_stm(state, config, backend, kb_id) or ""


def _learn_stm(state: SessionState, config: Mapping[str, Any], backend: KnowledgeBackend, kb_id: str
               ) -> str | None:
    backend.flush_vectors(kb_id)  # every call of the learn routine, whether or not a pattern results (§5.3)
    pattern = make_pattern(state.stm, state.emotives_accumulator, state.metadata_accumulator)
    state.stm = []
    state.emotives_accumulator = []
    state.metadata_accumulator = []
    if pattern is None:
        return None
    pending = state.pending_predictions
    view = PendingView(state.session_id, pending["record"]) if pending is not None else None
    backend.learn(kb_id, pattern, int(config.get("persistence", 5)), view)
    return PATTERN_PREFIX + pattern.name


def _auto_learn(state: SessionState, config: Mapping[str, Any], backend: KnowledgeBackend, kb_id: str
                ) -> str | None:
    limit = int(config.get("max_pattern_length") or 0)
    n = len(state.stm)
    if limit <= 0 or n < limit:
        return None
    if n == 1 or config.get("stm_mode", "CLEAR") != "ROLLING":
        return _learn_stm(state, config, backend, kb_id)
    window = limit - 1
    tail = state.stm[-window:] if n > window else state.stm[1:]
    tail = [list(e) for e in tail]
    name = _learn_stm(state, config, backend, kb_id)
    state.stm = tail
    return name


def observe(state: SessionState, observation: ObservationData, config: Mapping[str, Any],
            backend: KnowledgeBackend, kb_id: str, unique_id: str | None = None,
            defer_predictions: bool = False) -> dict[str, Any]:
    """One observation: build the event, append it, predict, then the auto-learn check.

    ``defer_predictions`` records what to predict from (``state.pending_predictions``) instead of predicting:
    the caller computes them later, over the KB as this observe saw it (a learn passes the record to the backend
    as its ``view``; ``serve_app.pending_predictions``)."""
    unique_id = unique_id or f"obs-{uuid.uuid4().hex}"
    summed = vector_sum(observation.vectors) if observation.vectors else None  # VectorLengthError: 400, no change
    state.time += 1
    if observation.emotives:
        state.emotives_accumulator = _capped([*state.emotives_accumulator, dict(observation.emotives)],
                                             state.max_emotives_size)
    if observation.metadata:
        state.metadata_accumulator = _capped([*state.metadata_accumulator, dict(observation.metadata)],
                                             state.max_metadata_size)
    vector_symbols: list[str] = []
    if summed is not None:
        name = vector_name_of(summed)
        vector_symbols = sorted(set(backend.vector_symbols(kb_id, name, summed.tolist())) | {name})
    event = build_event(observation.strings, vector_symbols)
    state.percept_data = {
        "strings": sorted(observation.strings),
        "vectors": [list(v) for v in observation.vectors],
        "emotives": average_emotives(state.emotives_accumulator),
        "path": [],
        "metadata": dict(observation.metadata),
    }
    auto_learned = None
    state.predictions = []
    state.pending_predictions = None
    if event:
        state.stm = cap_stm([*state.stm, event], state.max_stm_size)
        if config.get("process_predictions", True) and defer_predictions:
            state.predictions = None
            state.pending_predictions = {"record": uuid.uuid4().hex,  # unique_id may come from the client
                                         "unique_id": unique_id, "kb_id": kb_id, "stm": state.stm,
                                         "config": dict(config)}
        elif config.get("process_predictions", True):
            state.predictions, _ = backend.predict(kb_id, state.stm, QueryOptions.from_config(config))
        auto_learned = _auto_learn(state, config, backend, kb_id)
    return {
        "status": "okay",
        "session_id": state.session_id,
        "processor_id": state.node_id,
        "stm_length": len(state.stm),
        "time": state.time,
        "unique_id": unique_id,
        "auto_learned_pattern": auto_learned,
    }


def observe_sequence(state: SessionState, request: ObservationSequenceRequest, config: Mapping[str, Any],
                     backend: KnowledgeBackend, kb_id: str, defer_predictions: bool = False) -> dict[str, Any]:
    for item in request.observations:  # a 400 for any item's vectors before any item changes anything
        if item.vectors:
            vector_sum(item.vectors)
    initial = len(state.stm)
    results: list[dict[str, Any]] = []
    learned: list[str] = []
    for i, item in enumerate(request.observations):
        if request.clear_stm_between and i > 0:
            state.stm = []
        result = observe(state, item, config, backend, kb_id, item.unique_id or f"seq-obs-{uuid.uuid4().hex}",
                         defer_predictions)
        if request.learn_after_each and state.stm:
            learned.append(_learn_stm(state, config, backend, kb_id) or "")
        if result["auto_learned_pattern"]:
            learned.append(result["auto_learned_pattern"])
        results.append({"status": "okay", "sequence_position": i, "stm_length": len(state.stm),  # after step 3
                        "time": result["time"], "unique_id": result["unique_id"],
                        "auto_learned_pattern": result["auto_learned_pattern"]})
    final = None
    if request.learn_at_end and state.stm:
        final = _learn_stm(state, config, backend, kb_id) or ""
        learned.append(final)
    return {
        "status": "completed",
        "processor_id": state.node_id,
        "observations_processed": len(request.observations),
        "initial_stm_length": initial,
        "final_stm_length": len(state.stm),
        "results": results,
        "auto_learned_patterns": learned,
        "final_learned_pattern": final,
        "isolated": request.clear_stm_between,
    }
