"""Growable columnar storage used by the shard index (numpy arrays grown in place, in the narrowest type)."""

from __future__ import annotations

import numpy as np

SMALL = 4096
"""Below this capacity an array doubles when it grows; above, it grows by a quarter, so that a large index
carries at most a quarter of unused capacity (about an eighth on average)."""


class GrowableArray:
    """An append-only 1-D numpy array; ``view()`` is valid until the next append."""

    def __init__(self, dtype: type | np.dtype, capacity: int = 16):
        self._data = np.empty(max(1, capacity), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def reserve(self, extra: int) -> np.ndarray:
        """Room for ``extra`` more values; returns the whole buffer (for kernels that write in place, then
        ``commit``)."""
        need = self._size + extra
        capacity = self._data.shape[0]
        if need > capacity:
            grown = np.empty(max(need, 2 * capacity if capacity < SMALL else capacity + capacity // 4),
                             dtype=self._data.dtype)
            grown[:self._size] = self._data[:self._size]
            self._data = grown
        return self._data

    def commit(self, size: int) -> None:
        """The buffer's first ``size`` values are now the array (after a kernel wrote into ``reserve``'s room)."""
        if not self._size <= size <= self._data.shape[0]:
            raise ValueError(f"cannot commit {size} values: {self._size} held, room for {self._data.shape[0]}")
        self._size = size

    def append(self, value: int | float) -> None:
        self.reserve(1)
        self._data[self._size] = value
        self._size += 1

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        self.reserve(values.shape[0])
        self._data[self._size:self._size + values.shape[0]] = values
        self._size += values.shape[0]

    def view(self) -> np.ndarray:
        return self._data[:self._size]

    def trim(self) -> None:
        """Give back the unused capacity (after a bulk load)."""
        if self._data.shape[0] > max(1, self._size):
            self._data = self._data[:max(1, self._size)].copy()

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)


class NarrowArray(GrowableArray):
    """A ``GrowableArray`` of non-negative integers in the narrowest of ``ladder`` that holds every value so
    far: it widens (one copy) when a value does not fit. Kernels see whichever type it has."""

    def __init__(self, ladder: tuple[type[np.integer], ...], capacity: int = 16):
        super().__init__(ladder[0], capacity)
        self._ladder = tuple((np.dtype(t), int(np.iinfo(t).max)) for t in ladder)

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values)
        if values.shape[0]:
            self._widen_for(int(values.max()))
        super().extend(values)

    def append(self, value: int | float) -> None:
        self._widen_for(int(value))
        super().append(value)

    def _widen_for(self, largest: int) -> None:
        if largest <= np.iinfo(self._data.dtype).max:
            return
        wider = next((t for t, most in self._ladder if most >= largest), None)
        if wider is None:
            raise OverflowError(f"{largest} does not fit any of {[t.name for t, _ in self._ladder]}")
        self._data = self._data.astype(wider)


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
