"""Names and ids exactly as KATO derives them (spec §1.5, §3.4, §5).

The hashes are part of the public contract: clients and KATO's own test fixtures recompute them, so every
function here must stay bit-identical to KATO's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

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


def vector_name(vectors: Sequence[Sequence[float]]) -> str:
    """Name of the element-wise sum of an observation's vectors: sha1 of numpy's printed form.

    Raises ValueError when the vectors do not share one length.
    """
    summed = np.sum(np.array([np.asarray(v, dtype=float) for v in vectors]), axis=0) if len(vectors) > 1 \
        else np.asarray(vectors[0], dtype=float)
    return VECTOR_PREFIX + hashlib.sha1(str(summed).encode()).hexdigest()


def vector_lengths_match(vectors: Sequence[Sequence[float]]) -> bool:
    return len({len(v) for v in vectors}) <= 1


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
