"""Names and ids exactly as KATO derives them (spec §1.5, §3.4, §5).

The hashes are part of the public contract: clients and KATO's own test fixtures recompute them, so every
function here must stay bit-identical to KATO's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from schema.errors import VectorLengthError

PATTERN_PREFIX = "PTRN|"
VECTOR_PREFIX = "VCTR|"
KB_ID_MAX_LENGTH = 60
_UNSAFE_NODE_CHARS = '/\\."$*<>:|?- '
_SAFE_TABLE = str.maketrans({c: "_" for c in _UNSAFE_NODE_CHARS})


def pattern_hash(events: Sequence[Sequence[str]]) -> str:
    """sha1 of the Python list repr of the events, e.g. ``[['hello'], ['world']]``."""
    as_lists = [[str(s) for s in event] for event in events]
    return hashlib.sha1(str(as_lists).encode("utf-8")).hexdigest()


def pattern_name(events: Sequence[Sequence[str]]) -> str:
    return PATTERN_PREFIX + pattern_hash(events)


def bare_pattern_hash(name: str) -> str:
    """Accept a pattern id with or without the ``PTRN|`` prefix and return the bare hash."""
    return name[len(PATTERN_PREFIX):] if name.startswith(PATTERN_PREFIX) else name


def vector_sum(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    """The observation's vector (spec §5.1): the float64 arrays summed as a left fold in list order, with
    numpy broadcasting (a length-1 vector is added to every element).

    Raises ``VectorLengthError`` when two lengths do not broadcast together, or when there is no vector.
    """
    if not vectors:
        raise VectorLengthError("an observation's vectors cannot be summed: there are none")
    total = np.asarray(vectors[0], dtype=np.float64)
    for vector in vectors[1:]:
        addend = np.asarray(vector, dtype=np.float64)
        if not _broadcastable(total.shape[0], addend.shape[0]):
            raise VectorLengthError(
                f"the vectors of one observation must have the same length, or length 1 (added to every "
                f"element): lengths {[len(v) for v in vectors]} do not add up")
        with np.errstate(over="ignore", invalid="ignore"):
            total = total + addend
    return total


def _broadcastable(a: int, b: int) -> bool:
    return a == b or a == 1 or b == 1


def vector_name_of(summed: np.ndarray) -> str:
    """``VCTR|`` + sha1 of numpy's printed form of the summed vector (default print options)."""
    return VECTOR_PREFIX + hashlib.sha1(str(summed).encode()).hexdigest()


def vector_name(vectors: Sequence[Sequence[float]]) -> str:
    """Name of an observation's vectors: the name of their sum (``vector_sum``)."""
    return vector_name_of(vector_sum(vectors))


def safe_node_part(node_id: str) -> str:
    return node_id.translate(_SAFE_TABLE)


def kb_id_for(node_id: str, service_name: str = "kato") -> str:
    """The knowledge-base id of a node (spec §3.4), including the 60-character truncation rule."""
    base = service_name.replace("-", "_")
    safe = safe_node_part(node_id)
    kb_id = f"{safe}_{base}"
    if len(kb_id) <= KB_ID_MAX_LENGTH:
        return kb_id
    digest = hashlib.md5(safe.encode("utf-8")).hexdigest()[:8]
    keep = KB_ID_MAX_LENGTH - len(base) - 10
    return f"{safe[:keep]}_{digest}_{base}"
