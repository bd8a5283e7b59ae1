"""How long a shard takes to reload its range after a restart, and the memory it holds then (prints figures;
not a test).

    kato-cluster bench reload --patterns 5000000 --runs 3

Fills one embedded ClickHouse store with KATO's standard workload as the whole range of one shard, then, in a
fresh process each run (as a restarted shard actor is), opens the store and runs ``StoredShard.load``: the code
a shard actor runs when it starts. A warm-up load of a few buckets first pays the fixed costs (imports, the
compiled kernels, the engine's start), so the resident memory growth counted is what the range itself costs.
Not counted: Ray starting the actor's process, and replaying a write-ahead log tail (empty here).
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cluster.ops.bench.workloads import standard_patterns

CHUNK = 100_000
WARM_BUCKETS = 300  # buckets 0..299 of 65,536: a few thousand patterns per million


@dataclass(frozen=True)
class ReloadBench:
    patterns: int = 1_000_000
    runs: int = 3


@dataclass(frozen=True)
class Reload:
    patterns: int
    seconds: float
    rss_growth: int
    index_bytes: int


def fill(path: str, patterns: int, kb_id: str = "bench_reload") -> float:
    """Store ``patterns`` of the standard workload at ``path``; returns the seconds it took."""
    from cluster.stores.clickhouse import ChdbStore
    from schema.learning import make_pattern
    from schema.pattern_rows import pattern_table

    started = time.perf_counter()
    with ChdbStore(path) as store:
        store.apply_ddl()
        for lo in range(0, patterns, CHUNK):
            chunk = standard_patterns(min(CHUNK, patterns - lo), seed=lo // CHUNK)
            store.insert_patterns(pattern_table(kb_id, [p for p in map(make_pattern, chunk) if p is not None]))
    return time.perf_counter() - started


def measure(path: str) -> Reload:
    """One restart: the warm-up, then the whole range loaded as a starting shard loads it."""
    import gc

    from actors.process_memory import resident_bytes
    from actors.shard import Shard
    from actors.stored_shard import StoredShard
    from cluster.stores.clickhouse import ChdbStore

    store = ChdbStore(path)
    StoredShard(Shard(0, 0, WARM_BUCKETS - 1), store=store).load()
    gc.collect()
    before = resident_bytes()
    started = time.perf_counter()
    shard = StoredShard(Shard(0, 0, 65535), store=store)
    loaded = shard.load()
    seconds = time.perf_counter() - started
    return Reload(loaded, seconds, resident_bytes() - before, shard.stats().index_bytes)


def _measure_into(path: str, results: multiprocessing.Queue) -> None:
    results.put(measure(path))


def measure_fresh(path: str) -> Reload:
    """``measure`` in a new process (spawned: nothing inherited from this one)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_measure_into, args=(path, results))
    process.start()
    result = results.get()
    process.join()
    return result


def main(opts: ReloadBench) -> list[Reload]:
    with tempfile.TemporaryDirectory(prefix="kato-bench-reload-") as tmp:
        path = str(Path(tmp) / "chdb")
        print(f"filled one shard's store with {opts.patterns:,} patterns in {fill(path, opts.patterns):.1f} s")
        runs = []
        for run in range(opts.runs):
            result = measure_fresh(path)
            runs.append(result)
            print(f"run {run + 1}: reloaded {result.patterns:,} patterns in {result.seconds:.1f} s; resident memory "
                  f"grew {result.rss_growth / result.patterns:.0f} B/pattern (index "
                  f"{result.index_bytes / result.patterns:.0f} B/pattern)")
    print(f"median of {len(runs)}: reload {statistics.median(r.seconds for r in runs):.1f} s, "
          f"{statistics.median(r.patterns / r.seconds for r in runs):,.0f} patterns/s, resident growth "
          f"{statistics.median(r.rss_growth / r.patterns for r in runs):.0f} B/pattern")
    return runs
