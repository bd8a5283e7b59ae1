"""In-process knowledge backend over ``MemoryKB``: the reference for the cluster and the demo's store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schema.learning import LearnedPattern
from schema.rules.memory_kb import MemoryKB
from schema.rules.query import QueryOptions
from schema.rules.reference import predict
from schema.rules.session_logic import PendingView
from schema.rules.vectors import NEAREST_VECTORS, VectorSpace, flush


@dataclass
class MemoryBackend:
    kbs: dict[str, MemoryKB] = field(default_factory=dict)
    vectors: dict[str, VectorSpace] = field(default_factory=dict)
    pending_vectors: dict[str, list[tuple[str, list[float]]]] = field(default_factory=dict)

    def kb(self, kb_id: str) -> MemoryKB:
        return self.kbs.setdefault(kb_id, MemoryKB())

    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int, view: PendingView | None = None) -> None:
        """No ``view`` to keep: this backend predicts inside every observe (it is never asked to defer)."""
        self.kb(kb_id).learn(pattern, persistence)

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        kb = self.kb(kb_id)
        return predict(stm, kb.items(), kb.stats(), options)

    def vector_symbols(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        """Search the node's indexed vectors, then buffer this one until the next learn (spec §5.2)."""
        space = self.vectors.get(kb_id)
        nearest = space.nearest(vector, NEAREST_VECTORS) if space is not None else []
        self.pending_vectors.setdefault(kb_id, []).append((name, [float(x) for x in vector]))
        return [name, *nearest]

    def flush_vectors(self, kb_id: str) -> None:
        """Every call of the learn routine indexes the node's buffer, then empties it (spec §5.3)."""
        pending = self.pending_vectors.pop(kb_id, [])
        if pending:
            flush(self.vectors.setdefault(kb_id, VectorSpace()), pending)

    def clear(self, kb_id: str) -> None:
        self.kbs.pop(kb_id, None)
        self.vectors.pop(kb_id, None)
        self.pending_vectors.pop(kb_id, None)
