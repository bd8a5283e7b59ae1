"""In-process shard benchmark on KATO's standard workload (not a test: prints figures).

    kato-cluster bench shards --patterns 100000 --shards 2 --queries 200
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from actors.shard import Shard
from cluster.ops.bench.workloads import standard_patterns, standard_queries
from schema.learning import LearnedPattern, make_pattern
from schema.placement import even_ranges, owners, pattern_buckets
from schema.rules.memory_kb import MemoryKB
from schema.rules.query import QueryOptions
from schema.rules.reference import predict
from serve_app.local_shards import LocalShards
from serve_app.predictor import Predictor


@dataclass(frozen=True)
class ShardsBench:
    patterns: int = 100_000
    shards: int = 2
    queries: int = 200
    reference_queries: int = 3


def add_routed(shards: Sequence[Shard], kb_id: str, learned: Sequence[LearnedPattern]) -> None:
    """Add each pattern to the shard owning its home bucket (``shards`` in shard-id order, their ranges splitting
    the bucket space evenly, as ``even_ranges`` does)."""
    buckets = pattern_buckets([p.events for p in learned])
    owner = owners(buckets, even_ranges(len(shards)))
    for shard_id, shard in enumerate(shards):
        mine = np.flatnonzero(owner == shard_id)
        picked = [learned[i] for i in mine.tolist()]
        shard.add(kb_id, [p.name for p in picked], [p.events for p in picked], buckets[mine])


def main(opts: ShardsBench) -> None:
    patterns = standard_patterns(opts.patterns)
    learned = [p for p in map(make_pattern, patterns) if p is not None]
    kb = MemoryKB()
    for pattern in learned:
        kb.learn(pattern, 5)

    shards = [Shard(r.shard_id, r.lo, r.hi) for r in even_ranges(opts.shards)]
    start = time.perf_counter()
    batch = 50_000
    for lo in range(0, len(learned), batch):
        add_routed(shards, "bench", learned[lo:lo + batch])
    add_seconds = time.perf_counter() - start
    print(f"bulk add: {len(learned)} patterns in {add_seconds:.2f} s = {len(learned) / add_seconds:,.0f} patterns/s "
          f"(MinHash placement included)")
    for shard in shards:
        stats = shard.stats()
        per = stats.index_bytes / max(1, sum(stats.patterns_per_kb.values()))
        print(f"  shard {stats.shard_id} [{stats.bucket_lo}-{stats.bucket_hi}]: {stats.patterns_per_kb} patterns, "
              f"{stats.index_bytes / 1e6:.1f} MB index ({per:.0f} B/pattern)")

    predictor = Predictor(LocalShards(shards), lambda _kb, _c, _w, _as_of: kb.stats())
    options = QueryOptions(recall_threshold=0.1, max_predictions=100)
    queries = standard_queries(patterns, opts.queries)
    predictor.predict("bench", queries[0], options)
    latencies = []
    for q in queries:
        t0 = time.perf_counter()
        predictor.predict("bench", q, options)
        latencies.append(time.perf_counter() - t0)
    ms = sorted(x * 1000 for x in latencies)

    def p(fraction: float) -> float:
        return ms[min(len(ms) - 1, int(fraction * len(ms)))]

    print(f"predictions ({opts.shards} shards, {len(ms)} queries): p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, "
          f"p99 {p(0.99):.1f} ms, mean {statistics.mean(ms):.1f} ms; corpus/latency "
          f"{opts.patterns / (p(0.5) / 1000):,.0f} candidates/s at p50")

    ref_times = []
    for q in queries[:opts.reference_queries]:
        t0 = time.perf_counter()
        expected = predict(q, kb.items(), kb.stats(), options)
        ref_times.append(time.perf_counter() - t0)
        assert predictor.predict("bench", q, options)[0] == expected[0]
    ref = statistics.median(ref_times)
    print(f"reference engine: {ref * 1000:.0f} ms/query = {opts.patterns / ref:,.0f} candidates/s; "
          f"speed-up at p50 {ref * 1000 / p(0.5):.0f}x (answers identical on {len(ref_times)} queries)")
