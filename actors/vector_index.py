"""The nodes' vectors (spec §5): an exact in-memory index per KB, persisted in the store, and the pending buffer.

One process owns the index of every KB: shard 0's actor in Ray mode (``actors.ray_shard``), the service's own
process otherwise (``cluster.ops.local``). A KB's points are loaded from the store (table ``kato.vectors``, in
first-insertion order) the first time the KB is used, and every flush writes the points it indexed before it
trims the buffer (``cluster.stores.vector_buffer``), so a restart loses neither. ``NodeVectors`` serialises a
node's search + buffer append and its flush under one lock, so concurrent observes and learns of one node,
from any ingress replica, see one buffer and one index.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from cluster.stores.vector_buffer import VectorBuffer
from schema.errors import StoreUnavailable
from schema.rules.vectors import NEAREST_VECTORS, StoredVector, VectorSpace, flush


class VectorPersistence(Protocol):
    """Where indexed points are kept (``PatternStore``)."""

    def insert_vectors(self, kb_id: str, names: Sequence[str], vectors: Sequence[Sequence[float]],
                       positions: Sequence[int] | None = None) -> None: ...

    def load_vectors(self, kb_id: str) -> list[tuple[str, np.ndarray, int]]: ...

    def drop_vectors(self, kb_id: str) -> None: ...


class VectorIndex:
    """Every KB's ``VectorSpace``, loaded from ``store`` on first use (none: memory only)."""

    def __init__(self, store: VectorPersistence | None = None) -> None:
        self.store = store
        self.spaces: dict[str, VectorSpace] = {}

    def space(self, kb_id: str) -> VectorSpace:
        space = self.spaces.get(kb_id)
        if space is None:
            space = VectorSpace()
            if self.store is not None:
                space.restore(StoredVector(n, v, p) for n, v, p in self.store.load_vectors(kb_id))
            self.spaces[kb_id] = space
        return space

    def nearest(self, kb_id: str, vector: Sequence[float], k: int = NEAREST_VECTORS) -> list[str]:
        return self.space(kb_id).nearest(vector, k)

    def index(self, kb_id: str, pending: Sequence[tuple[str, Sequence[float]]]) -> int:
        """Index buffered vectors in order and persist the points they changed; returns how many were kept."""
        written = flush(self.space(kb_id), pending)
        if written and self.store is not None:
            self.store.insert_vectors(kb_id, [w.name for w in written], [w.vector.tolist() for w in written],
                                      [w.position for w in written])
        return len(written)

    def drop(self, kb_id: str) -> None:
        self.spaces.pop(kb_id, None)
        if self.store is not None:
            self.store.drop_vectors(kb_id)


class NodeVectors:
    """What the cluster backend asks of the vectors (``serve_app.cluster_backend.VectorStore``)."""

    def __init__(self, index: VectorIndex, buffer: VectorBuffer) -> None:
        self.index = index
        self.buffer = buffer
        self._lock = threading.Lock()

    def observe_vector(self, kb_id: str, name: str, vector: Sequence[float]) -> list[str]:
        """The nearest indexed vectors of an observation's sum, then the sum is buffered (spec §5.2)."""
        with self._lock:
            nearest = self.index.nearest(kb_id, vector, NEAREST_VECTORS)
            self.buffer.append(kb_id, name, vector)
            return nearest

    def flush_vectors(self, kb_id: str) -> int:
        """Index the node's buffer, then trim what was indexed (spec §5.3); returns how many points were kept."""
        with self._lock:
            pending = self.buffer.pending(kb_id)
            if not pending:
                return 0
            try:
                kept = self.index.index(kb_id, pending)
            except StoreUnavailable:
                return 0  # indexed in memory; the buffer keeps them until a flush can also store them
            self.buffer.trim(kb_id, len(pending))
            return kept

    def drop_kb(self, kb_id: str) -> None:
        """clear-all: the node's buffer and its indexed vectors (stance Q15)."""
        with self._lock:
            self.buffer.drop(kb_id)
            self.index.drop(kb_id)
