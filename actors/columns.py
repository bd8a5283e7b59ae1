"""Growable columnar storage used by the shard index (numpy arrays with capacity doubling)."""

from __future__ import annotations

import numpy as np


class GrowableArray:
    """An append-only 1-D numpy array; ``view()`` is valid until the next append."""

    def __init__(self, dtype: type | np.dtype, capacity: int = 16):
        self._data = np.empty(max(1, capacity), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _reserve(self, extra: int) -> None:
        need = self._size + extra
        if need > self._data.shape[0]:
            grown = np.empty(max(need, 2 * self._data.shape[0]), dtype=self._data.dtype)
            grown[:self._size] = self._data[:self._size]
            self._data = grown

    def append(self, value: int | float) -> None:
        self._reserve(1)
        self._data[self._size] = value
        self._size += 1

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        self._reserve(values.shape[0])
        self._data[self._size:self._size + values.shape[0]] = values
        self._size += values.shape[0]

    def view(self) -> np.ndarray:
        return self._data[:self._size]

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)


class Vocabulary:
    """Symbol ↔ int id for one shard."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.symbols: list[str] = []

    def __len__(self) -> int:
        return len(self.symbols)

    def add(self, symbol: str) -> int:
        idx = self.ids.get(symbol)
        if idx is None:
            idx = self.ids[symbol] = len(self.symbols)
            self.symbols.append(symbol)
        return idx

    def lookup_state(self, state: list[str]) -> np.ndarray:
        """Ids for query tokens; unknown tokens get distinct negative ids (equal tokens, equal ids)."""
        unknown: dict[str, int] = {}
        out = np.empty(len(state), dtype=np.int32)
        for i, s in enumerate(state):
            idx = self.ids.get(s)
            if idx is None:
                idx = unknown.setdefault(s, -1 - len(unknown))
            out[i] = idx
        return out
