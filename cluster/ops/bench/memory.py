"""Bytes per pattern of a running service, and its prediction latency, as the corpus grows (prints figures;
not a test).

    kato-cluster bench memory --patterns 1000000,10000000 [--redis-layout compact]

Starts its own service (embedded engines, its own embedded Redis so that Redis can be measured), streams
KATO's standard workload in (generated a chunk at a time, so the load generator stays small; one request per
million patterns), and after each size prints, per pattern grown since a warm-up that pays the fixed costs:
the shards' index (``index_bytes``: every array, names and lookup table, capacity included), the growth of the
shard processes' resident memory, the growth of Redis ``used_memory``, and the bytes on disk of the shards'
ClickHouse stores and of Redis's append-only file; then predictions p50/p99 over HTTP.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import requests

from cluster.ops.bench.client import status_shards, totals_of
from cluster.ops.bench.http_latency import percentile
from cluster.ops.bench.learning import stream_load
from cluster.ops.bench.workloads import STANDARD_CONFIG, standard_patterns, standard_queries
from cluster.ops.embedded_redis import EmbeddedRedis
from cluster.ops.launcher import start_detached, stop_detached
from cluster.stores.pattern_layout import listpack_entries_for
from schema.settings import Settings

CHUNK = 200_000
REQUEST_PATTERNS = 1_000_000  # patterns per streamed request
WARM_UP = 2_000
NODE = "bench_memory"


@dataclass(frozen=True)
class MemoryBench:
    patterns: tuple[int, ...] = (1_000_000,)
    queries: int = 200
    shards: int = 2
    port: int = 8768
    seed: int = 0
    url: str | None = None  # a running service instead of one started here
    redis: str | None = None  # with ``url``: its Redis, to measure (else not measured)
    data_dir: str | None = None  # with ``url``: its data directory, to measure the disk (else not measured)
    redis_layout: str = "kato"  # where the service it starts keeps per-pattern values in Redis


@dataclass(frozen=True)
class Footprint:
    patterns: int
    index_bytes: int
    shard_rss: int  # 0: shards in the service's own process, not measured
    redis_used: int | None
    store_disk: int | None
    redis_disk: int | None


def main(opts: MemoryBench) -> None:
    if opts.url:
        client = redis.Redis.from_url(opts.redis) if opts.redis else None
        run(opts.url.rstrip("/"), opts, opts.data_dir, client)
        return
    with tempfile.TemporaryDirectory(prefix="kato-bench-memory-") as data_dir:
        embedded = EmbeddedRedis(data_dir, listpack_entries=listpack_entries_for(opts.redis_layout))
        try:
            settings = Settings.from_env(data_dir=data_dir, port=opts.port, shards=opts.shards, redis=embedded.url,
                                         redis_layout=opts.redis_layout)
            process = start_detached(settings, timeout=300)
            try:
                run(f"http://127.0.0.1:{opts.port}", opts, data_dir, redis.Redis.from_url(embedded.url))
            finally:
                stop_detached(data_dir)
                process.wait(timeout=120)
        finally:
            embedded.stop()


def run(url: str, opts: MemoryBench, data_dir: str | None, client: redis.Redis | None) -> None:
    http = requests.Session()
    _warm_up(http, url)
    base = footprint(http, url, data_dir, client)
    loaded = 0
    for size in sorted(opts.patterns):
        start = time.perf_counter()
        seconds = sum(stream_load(http, url, NODE, _chunks(lo, min(lo + REQUEST_PATTERNS, size), opts.seed))
                      for lo in range(loaded, size, REQUEST_PATTERNS))
        rate = (size - loaded) / seconds
        loaded = size
        _wait_flushed(http, url)
        now = footprint(http, url, data_dir, client)
        added = max(1, now.patterns - base.patterns)
        print(f"{now.patterns:,} patterns, loaded at {rate:,.0f}/s ({time.perf_counter() - start:.0f} s with the "
              f"flush); per pattern: index {now.index_bytes / max(1, now.patterns):.0f} B, "
              f"shard RSS growth {_per(now.shard_rss or None, base.shard_rss, added)}, "
              f"Redis {_per(now.redis_used, base.redis_used, added, digits=1)}, "
              f"ClickHouse disk {_per(now.store_disk, base.store_disk, added)}, "
              f"Redis AOF {_per(now.redis_disk, base.redis_disk, added)}")
        print("  " + predictions(http, url, _queries(size, opts)))


def _per(now: int | None, before: int | None, patterns: int, digits: int = 0) -> str:
    return "not measured" if now is None or before is None else f"{(now - before) / patterns:.{digits}f} B"


def _warm_up(http: requests.Session, url: str) -> None:
    """What every shard process pays once, before the baseline: the compiled kernels (tens of MB of LLVM per
    process), the first insert and merge."""
    corpus = standard_patterns(WARM_UP, seed=10_000)
    stream_load(http, url, f"{NODE}_warm_up", corpus)
    predictions(http, url, standard_queries(corpus, 5), f"{NODE}_warm_up")
    _wait_flushed(http, url)


def _chunks(start: int, end: int, seed: int) -> Iterator[list[list[list[str]]]]:
    """Patterns ``start..end`` of the workload, ``CHUNK`` at a time (chunk i from seed ``seed + i``)."""
    for lo in range(start - start % CHUNK, end, CHUNK):
        chunk = standard_patterns(CHUNK, seed=seed + lo // CHUNK)
        yield chunk[max(start - lo, 0):end - lo]


def _queries(size: int, opts: MemoryBench) -> list[list[list[str]]]:
    last = (size - 1) // CHUNK * CHUNK
    return standard_queries(standard_patterns(CHUNK, seed=opts.seed + last // CHUNK)[:size - last], opts.queries)


def footprint(http: requests.Session, url: str, data_dir: str | None, client: redis.Redis | None) -> Footprint:
    shards = status_shards(http, url)
    root = Path(data_dir) if data_dir else None
    return Footprint(*totals_of(shards), sum(int(s.get("rss_bytes") or 0) for s in shards),
                     int(client.info("memory")["used_memory"]) if client is not None else None,
                     sum(_bytes_under(p) for p in root.glob("shard-*")) if root else None,
                     _bytes_under(root / "redis") if root else None)


def _bytes_under(root: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files
               if os.path.isfile(os.path.join(d, f)))


def _wait_flushed(http: requests.Session, url: str, timeout: float = 600.0) -> None:
    """Until every shard's write-ahead log is empty (the rows are in ClickHouse)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s["log"]["rows"] == 0 for s in status_shards(http, url)):
            return
        time.sleep(1.0)
    raise TimeoutError("the shards' logs did not drain")


def predictions(http: requests.Session, url: str, queries: list[list[list[str]]], node: str = NODE) -> str:
    session = http.post(f"{url}/sessions", json={"node_id": node, "config": STANDARD_CONFIG}, timeout=60).json()
    base = f"{url}/sessions/{session['session_id']}"
    times = []
    for query in queries:
        http.post(f"{base}/clear-stm", timeout=60).raise_for_status()
        for event in query:
            http.post(f"{base}/observe", json={"strings": event}, timeout=60).raise_for_status()
        t0 = time.perf_counter()
        http.get(f"{base}/predictions", timeout=120).raise_for_status()
        times.append(time.perf_counter() - t0)
    ms = [t * 1000 for t in times]
    return f"predictions over HTTP: p50 {percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms ({len(ms)})"
