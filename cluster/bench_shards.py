"""In-process shard benchmark on KATO's standard workload (not a test: prints figures).

    python -m cluster.bench_shards --patterns 100000 --shards 2 --queries 200
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from actors.placement import even_ranges, owners, pattern_buckets
from actors.shard import Shard
from serve_app.learning import make_pattern
from serve_app.memory_kb import MemoryKB
from serve_app.predictor import LocalShards, Predictor
from serve_app.reference_engine import QueryOptions, predict
from serve_app.workloads import standard_patterns, standard_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patterns", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reference-queries", type=int, default=3)
    args = parser.parse_args()

    patterns = standard_patterns(args.patterns)
    learned = [make_pattern(p) for p in patterns]
    kb = MemoryKB()
    for p in learned:
        kb.learn(p, 5)

    ranges = even_ranges(args.shards)
    shards = [Shard(r.shard_id, r.lo, r.hi) for r in ranges]
    start = time.perf_counter()
    batch = 50_000
    for lo in range(0, len(learned), batch):
        chunk = learned[lo:lo + batch]
        owner = owners(pattern_buckets([p.events for p in chunk]), ranges)
        for shard_id, shard in enumerate(shards):
            mine = np.flatnonzero(owner == shard_id).tolist()
            shard.add("bench", [chunk[i].name for i in mine], [chunk[i].events for i in mine])
    add_seconds = time.perf_counter() - start
    print(f"bulk add: {len(learned)} patterns in {add_seconds:.2f} s = {len(learned) / add_seconds:,.0f} patterns/s "
          f"(MinHash placement included)")
    for shard in shards:
        stats = shard.stats()
        per = stats.index_bytes / max(1, sum(stats.patterns_per_kb.values()))
        print(f"  shard {stats.shard_id} [{stats.bucket_lo}-{stats.bucket_hi}]: {stats.patterns_per_kb} patterns, "
              f"{stats.index_bytes / 1e6:.1f} MB index ({per:.0f} B/pattern)")

    predictor = Predictor(LocalShards(shards), lambda _kb, _c, _w: kb.stats())
    options = QueryOptions(recall_threshold=0.1, max_predictions=100)
    queries = standard_queries(patterns, args.queries)
    predictor.predict("bench", queries[0], options)
    latencies = []
    for q in queries:
        t0 = time.perf_counter()
        predictor.predict("bench", q, options)
        latencies.append(time.perf_counter() - t0)
    ms = sorted(x * 1000 for x in latencies)
    p = lambda f: ms[min(len(ms) - 1, int(f * len(ms)))]  # noqa: E731
    print(f"predictions ({args.shards} shards, {len(ms)} queries): p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, "
          f"p99 {p(0.99):.1f} ms, mean {statistics.mean(ms):.1f} ms; corpus/latency "
          f"{args.patterns / (p(0.5) / 1000):,.0f} candidates/s at p50")

    ref_times = []
    for q in queries[:args.reference_queries]:
        t0 = time.perf_counter()
        expected = predict(q, kb.items(), kb.stats(), options)
        ref_times.append(time.perf_counter() - t0)
        assert predictor.predict("bench", q, options)[0] == expected[0]
    ref = statistics.median(ref_times)
    print(f"reference engine: {ref * 1000:.0f} ms/query = {args.patterns / ref:,.0f} candidates/s; "
          f"speed-up at p50 {ref * 1000 / p(0.5):.0f}x (answers identical on {len(ref_times)} queries)")


if __name__ == "__main__":
    main()
