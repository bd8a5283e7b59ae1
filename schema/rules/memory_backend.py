"""In-process knowledge backend over ``MemoryKB``: the reference for the cluster and the demo's store."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from schema.learning import LearnedPattern
from schema.rules.memory_kb import MemoryKB
from schema.rules.query import QueryOptions
from schema.rules.reference import predict

NEAREST_VECTORS = 3


@dataclass
class MemoryBackend:
    kbs: dict[str, MemoryKB] = field(default_factory=dict)
    vectors: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    pending_vectors: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def kb(self, kb_id: str) -> MemoryKB:
        return self.kbs.setdefault(kb_id, MemoryKB())

    def learn(self, kb_id: str, pattern: LearnedPattern, persistence: int) -> None:
        self.kb(kb_id).learn(pattern, persistence)
        self.vectors.setdefault(kb_id, {}).update(self.pending_vectors.pop(kb_id, {}))

    def predict(self, kb_id: str, stm: Sequence[Sequence[str]], options: QueryOptions
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        kb = self.kb(kb_id)
        return predict(stm, kb.items(), kb.stats(), options)

    def vector_symbols(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        stored = self.vectors.get(kb_id, {})
        nearest = sorted((v for v in stored.items() if len(v[1]) == len(vector)),
                         key=lambda item: (math.dist(item[1], vector), item[0]))[:NEAREST_VECTORS]
        self.pending_vectors.setdefault(kb_id, {})[name] = list(vector)
        return [name, *(n for n, _ in nearest)]

    def clear(self, kb_id: str) -> None:
        self.kbs.pop(kb_id, None)
        self.vectors.pop(kb_id, None)
        self.pending_vectors.pop(kb_id, None)
