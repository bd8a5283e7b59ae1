"""KATO's vector rules (spec §5): one node's exact nearest-neighbour space and its pending buffer's flush.

Pure and in memory; the reference (``schema.rules.memory_backend``) and the cluster's vector index
(``actors.vector_index``) both hold their points in a ``VectorSpace``, so both search and index alike:

- stored points are ``float32`` (the observation's float64 sum, rounded once), in first-insertion order;
- a search takes a float64 query, computes ``norm(points_f32 - query_f64)`` in float64 over the whole space
  (numpy broadcasting: a length-1 query, or a space of dimension 1, broadcasts), and keeps the first ``k``
  by (distance, first-insertion position) — the project's deterministic tie rule (stance Q16);
- a query that does not broadcast against the space, or an empty space, finds nothing;
- the first point fixes the space's dimension; a point of another length is dropped (not an error);
- re-indexing a stored name overwrites its vector and keeps its position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

NEAREST_VECTORS = 3


@dataclass(frozen=True)
class StoredVector:
    """A point as indexed: its name, float32 components and first-insertion position."""

    name: str
    vector: np.ndarray  # float32
    position: int


@dataclass
class VectorSpace:
    """The indexed vectors of one node, in first-insertion order."""

    names: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    dim: int | None = None
    _points: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def points(self) -> np.ndarray:
        return self._points[:len(self.names)]

    def nearest(self, query: Sequence[float] | np.ndarray, k: int = NEAREST_VECTORS) -> list[str]:
        """Names of the ``k`` points closest to ``query`` by (Euclidean distance, position)."""
        if not self.names or k <= 0:
            return []
        q = np.asarray(query, dtype=np.float64)
        points = self.points
        if q.ndim != 1 or not (q.shape[0] == points.shape[1] or q.shape[0] == 1 or points.shape[1] == 1):
            return []
        with np.errstate(over="ignore", invalid="ignore"):
            distances = np.linalg.norm(points - q, axis=-1)
        order = np.argsort(distances, kind="stable")[:k]
        return [self.names[i] for i in order.tolist()]

    def upsert(self, name: str, vector: Sequence[float] | np.ndarray) -> StoredVector | None:
        """Index one point; returns it as stored, or None when its length is not the space's dimension."""
        point = np.asarray(vector, dtype=np.float64).astype(np.float32)
        if point.ndim != 1 or (self.dim is not None and point.shape[0] != self.dim):
            return None
        if self.dim is None:
            self.dim = int(point.shape[0])
            self._points = np.zeros((0, self.dim), np.float32)
        position = self.positions.get(name)
        if position is None:
            position = len(self.names)
            self._grow(position + 1)
            self.names.append(name)
            self.positions[name] = position
        self._points[position] = point
        return StoredVector(name, point, position)

    def restore(self, stored: Iterable[StoredVector]) -> None:
        """Load points as persisted (ordered by position; positions are renumbered densely in that order)."""
        for item in sorted(stored, key=lambda s: s.position):
            self.upsert(item.name, item.vector)

    def _grow(self, rows: int) -> None:
        if rows > self._points.shape[0]:
            grown = np.zeros((max(rows, 2 * self._points.shape[0], 16), self._points.shape[1]), np.float32)
            grown[:self._points.shape[0]] = self._points
            self._points = grown


def flush(space: VectorSpace, pending: Iterable[tuple[str, Sequence[float]]]) -> list[StoredVector]:
    """Index a node's pending buffer in buffer order (spec §5.3); returns the points as stored, the last
    version of each name once (what to persist). Points of another dimension are dropped."""
    written: dict[str, StoredVector] = {}
    for name, vector in pending:
        stored = space.upsert(name, vector)
        if stored is not None:
            written[name] = stored
    return sorted(written.values(), key=lambda s: s.position)
