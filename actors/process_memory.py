"""Handing memory a process freed back to the operating system.

A shard's resident memory otherwise keeps what bursts of work once needed: glibc's heap keeps freed pages of the
Python side (arrays that grew), Arrow's own allocator (mimalloc) keeps the pages of the record batches a load
read (about 430 B per pattern loaded, measured), and the embedded ClickHouse's jemalloc keeps what its inserts
and merges used (about 1.2 KB per pattern inserted, measured; ~64 B once purged). All three are released after a
load and after each burst of flushes (``actors.stored_shard``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os

YOUNG_COLLECTION_THRESHOLD = 100_000
"""Allocations between two collections of the youngest generation (Python's default: 700). A batch of learns
builds hundreds of thousands of small lists that all survive until it is committed; at the default each is
traversed again and again (measured: 40 % of a bulk ingest's time)."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def resident_bytes() -> int:
    """This process's resident memory: /proc where there is one, else the peak (getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def release_arrow_pool() -> None:
    """Return the pages Arrow's default memory pool keeps cached after its buffers were freed."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def trim_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free heap pages back to the OS; False where there is no glibc."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def tune_collector() -> None:
    """The cyclic garbage collector for a long-running server, once it has started: what start-up made (the
    imported modules, Ray's and the web framework's objects, a loaded index) is frozen out of every later
    collection, and the youngest generation is collected every ``YOUNG_COLLECTION_THRESHOLD`` allocations."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)
