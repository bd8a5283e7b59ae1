"""Pattern names of one KB in a shard as 20-byte digests, with a name → local id table and no Python object
per pattern.

Every name the shards hold is a bare sha1 hex digest (40 lowercase hex characters; KATO's ``PTRN|`` names
without the prefix), so it is kept as its 20 bytes. The lookup table is open addressing with linear probing
over int32 slots holding local ids (-1: empty), at most 70 % full; a slot's hash is the digest's own first
bytes (sha1 output is uniform). The kernels run in numba: adding or finding a batch of names is one call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from actors.columns import GrowableArray

DIGEST_BYTES = 20
HEX_LENGTH = 2 * DIGEST_BYTES
MAX_LOAD = 0.7
EMPTY = -1


@njit(cache=True, nogil=True)
def _hash(digests, row):
    h = 0
    for k in range(7):
        h = (h << 8) | digests[row * DIGEST_BYTES + k]
    return h


@njit(cache=True, nogil=True)
def _same(digests, row, query, q):
    for k in range(DIGEST_BYTES):  # noqa: SIM110 (numba compiles no generator inside all())
        if digests[row * DIGEST_BYTES + k] != query[q * DIGEST_BYTES + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _probe(slots, digests, query, q):
    """The slot holding query digest ``q``, or the empty slot where it would go; and the id found there."""
    mask = slots.shape[0] - 1
    h = _hash(query, q) & mask
    while True:
        s = slots[h]
        if s == EMPTY or _same(digests, s, query, q):
            return h, s
        h = (h + 1) & mask


@njit(cache=True, nogil=True)
def _insert_all(slots, digests, count, query):
    """Local id of every query digest, appending (into ``digests`` from row ``count``) those not held yet;
    returns (ids, new count)."""
    n = query.shape[0] // DIGEST_BYTES
    ids = np.empty(n, np.int64)
    for q in range(n):
        h, s = _probe(slots, digests, query, q)
        if s == EMPTY:
            for k in range(DIGEST_BYTES):
                digests[count * DIGEST_BYTES + k] = query[q * DIGEST_BYTES + k]
            slots[h] = count
            s = count
            count += 1
        ids[q] = s
    return ids, count


@njit(cache=True, nogil=True)
def _find_all(slots, digests, query):
    """Local id of every query digest, or -1."""
    n = query.shape[0] // DIGEST_BYTES
    ids = np.empty(n, np.int64)
    for q in range(n):
        ids[q] = _probe(slots, digests, query, q)[1]
    return ids


@njit(cache=True, nogil=True)
def _rehash(slots, digests, count):
    mask = slots.shape[0] - 1
    for row in range(count):
        h = _hash(digests, row) & mask
        while slots[h] != EMPTY:
            h = (h + 1) & mask
        slots[h] = row


def digests_of(names: Sequence[str]) -> np.ndarray:
    """The names' digests, flat (20 bytes each); ValueError unless every name is 40 lowercase hex digits."""
    joined = "".join(names)
    try:
        raw = (bytes.fromhex(joined) if all(len(n) == HEX_LENGTH for n in names) and joined == joined.lower()
               else b"")
    except ValueError:
        raw = b""
    if len(raw) != DIGEST_BYTES * len(names):
        bad = next(n for n in names if not is_pattern_name(n))
        raise ValueError(f"a pattern name is 40 lowercase hex digits (a sha1 digest), not {bad!r}")
    return np.frombuffer(raw, np.uint8).copy()


def is_pattern_name(name: str) -> bool:
    if len(name) != HEX_LENGTH or name != name.lower():
        return False
    try:
        return len(bytes.fromhex(name)) == DIGEST_BYTES
    except ValueError:
        return False


class PatternNames:
    def __init__(self) -> None:
        self._digests = GrowableArray(np.uint8, 16 * DIGEST_BYTES)
        self._slots = np.full(16, EMPTY, np.int32)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, names: Sequence[str]) -> np.ndarray:
        """Local id of every name, numbering those not held yet from ``len(self)`` in order of appearance."""
        query = digests_of(names)
        self._make_room(len(names))
        buffer = self._digests.reserve(query.shape[0])
        ids, self._count = _insert_all(self._slots, buffer, self._count, query)
        self._digests.commit(self._count * DIGEST_BYTES)
        return ids

    def find(self, names: Sequence[str]) -> np.ndarray:
        """Local id of every name, -1 for names not held (and for strings that are no pattern name)."""
        try:
            query = digests_of(names)
        except ValueError:
            valid = [i for i, name in enumerate(names) if is_pattern_name(name)]
            ids = np.full(len(names), EMPTY, np.int64)
            ids[valid] = self.find([names[i] for i in valid])
            return ids
        return _find_all(self._slots, self._digests.view(), query)

    def get(self, name: str) -> int | None:
        found = int(self.find([name])[0])
        return None if found == EMPTY else found

    def names(self, ids: np.ndarray) -> list[str]:
        """The hex names of these local ids, in order."""
        text = self._rows()[ids].tobytes().hex()
        return [text[i:i + HEX_LENGTH] for i in range(0, len(text), HEX_LENGTH)]

    def sort_keys(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys for ``np.lexsort`` (least significant first) that order these ids by name: the digest's
        bytes 16–19, 8–15 and 0–7 as big-endian integers (hex text orders like its bytes)."""
        rows = np.ascontiguousarray(self._rows()[ids])
        return (rows[:, 16:].view(">u4").ravel(), rows[:, 8:16].view(">u8").ravel(),
                rows[:, :8].view(">u8").ravel())

    def _rows(self) -> np.ndarray:
        return self._digests.view().reshape(-1, DIGEST_BYTES)

    def _make_room(self, extra: int) -> None:
        capacity = self._slots.shape[0]
        while self._count + extra > MAX_LOAD * capacity:
            capacity *= 2
        if capacity == self._slots.shape[0]:
            return
        self._slots = np.full(capacity, EMPTY, np.int32)
        _rehash(self._slots, self._digests.view(), self._count)

    def trim(self) -> None:
        self._digests.trim()

    @property
    def nbytes(self) -> int:
        return self._digests.nbytes + int(self._slots.nbytes)
