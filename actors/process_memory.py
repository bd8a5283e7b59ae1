"""Handing memory a process freed back to the operating system.

A shard's resident memory otherwise keeps what bursts of work once needed: glibc's heap keeps freed pages of the
Python side (batches decoded at load, arrays that grew), and the embedded ClickHouse's jemalloc keeps what its
inserts and merges used (about 1.2 KB per pattern inserted, measured; ~64 B once purged). Both are released
after a load and after each burst of flushes (``actors.stored_shard``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free heap pages back to the OS; False where there is no glibc."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
