"""What a query costs when it fans out to many shards: one large shard's own query time, and the ingress's cost to
decode and merge the answers of many (prints figures; not a test). The inputs of the README's sizing table.

    kato-cluster bench fanout --patterns 10000000 --fanout 100 --fanout-patterns 2000000

1. One shard holding ``--patterns`` of KATO's standard workload, in process: ``Shard.query`` p50/p95/p99 (the work
   each shard of a fanned-out query does; no Ray round trip, no HTTP).
2. ``--fanout`` shards sharing ``--fanout-patterns`` by home bucket: for each query, the pickled answers of all of
   them (what the ingress receives), then ``merge_tops`` over the decoded answers (what it does with them). A
   shard's answer is capped at three times ``max_predictions`` candidates, which these shards already reach, so
   the merge costs what it would over shards of any size.

A fanned-out query waits for its slowest shard: with ``--fanout`` shards, about the single shard's p99. The
estimate printed is that plus the decode and merge; the fixed cost of a request (HTTP, session, statistics,
metrics) comes on top and is measured over HTTP by ``bench http`` at a small corpus.
"""

from __future__ import annotations

import pickle
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from actors.shard import LocalTop, Shard, merge_tops
from cluster.ops.bench.http_latency import describe, percentile
from cluster.ops.bench.shards import add_routed
from cluster.ops.bench.workloads import STANDARD_CONFIG, standard_patterns, standard_queries
from schema.learning import make_pattern
from schema.placement import even_ranges
from schema.rules.query import QueryOptions

KB = "bench_fanout"
CHUNK = 200_000


@dataclass(frozen=True)
class FanoutBench:
    patterns: int = 1_000_000
    fanout: int = 100
    fanout_patterns: int = 1_000_000
    queries: int = 200


def fill(shards: Sequence[Shard], patterns: int, seed: int = 0) -> list[list[list[str]]]:
    """Add ``patterns`` of the standard workload to ``shards`` (each pattern to the shard owning its home bucket,
    the shards' ranges splitting the bucket space evenly); returns a sample of them to draw queries from."""
    sample: list[list[list[str]]] = []
    for lo in range(0, patterns, CHUNK):
        chunk = standard_patterns(min(CHUNK, patterns - lo), seed=seed + lo // CHUNK)
        add_routed(shards, KB, [p for p in map(make_pattern, chunk) if p is not None])
        sample.extend(chunk[:1000])
    return sample


def timed(count: int, run: Callable[[int], object]) -> list[float]:
    """Seconds of ``run(i)`` for each i below ``count``, after one untimed call (compiled kernels)."""
    run(0)
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        run(i)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(opts: FanoutBench) -> dict[str, float]:
    options = QueryOptions.from_config(STANDARD_CONFIG)
    shard_seconds = _single_shard(opts, options)

    shards = [Shard(r.shard_id, r.lo, r.hi) for r in even_ranges(opts.fanout)]
    sample = fill(shards, opts.fanout_patterns, seed=10_000)
    queries = standard_queries(sample, opts.queries, seed=2)
    answers = [[pickle.dumps(s.query(KB, q, options), protocol=pickle.HIGHEST_PROTOCOL) for s in shards]
               for q in queries]
    sizes = [sum(len(a) for a in per_query) for per_query in answers]
    kept = [sum(len(pickle.loads(a).names) for a in per_query) for per_query in answers]
    limit = 3 * options.max_predictions
    merge_seconds = timed(len(queries), lambda i: _merge(answers[i], limit, queries[i]))
    print(f"{opts.fanout} shards of {opts.fanout_patterns // opts.fanout:,} patterns: answers of "
          f"{statistics.median(kept):,.0f} candidates in all, {statistics.median(sizes) / 1e3:.0f} kB pickled per "
          f"query (medians)")
    print(describe(f"  decode + merge_tops of {opts.fanout} answers", merge_seconds, "queries"))
    shard_p99 = percentile(shard_seconds, 0.99) * 1000
    merge_p50 = percentile(merge_seconds, 0.5) * 1000
    print(f"estimate for a query over {opts.fanout} shards of {opts.patterns:,}: slowest shard ≈ single-shard p99 "
          f"{shard_p99:.1f} ms + decode and merge {merge_p50:.1f} ms = {shard_p99 + merge_p50:.1f} ms, plus the "
          f"request's fixed cost and the transfer of {statistics.median(sizes) / 1e6:.1f} MB")
    return {"shard_p50_ms": percentile(shard_seconds, 0.5) * 1000, "shard_p99_ms": shard_p99,
            "merge_p50_ms": merge_p50, "answer_bytes": statistics.median(sizes)}


def _single_shard(opts: FanoutBench, options: QueryOptions) -> list[float]:
    """Query seconds of one shard holding ``opts.patterns`` (freed on return)."""
    single = Shard(0, 0, 65535)
    started = time.perf_counter()
    sample = fill([single], opts.patterns)
    per = single.stats().index_bytes / single.count(KB)
    print(f"one shard: {single.count(KB):,} patterns added in {time.perf_counter() - started:.0f} s, index "
          f"{per:.0f} B/pattern")
    queries = standard_queries(sample, opts.queries, seed=1)
    seconds = timed(len(queries), lambda i: single.query(KB, queries[i], options))
    print(describe("  its query (Shard.query, in process)", seconds, "queries"))
    return seconds


def _merge(answers: list[bytes], limit: int, stm: list[list[str]]) -> list:
    tops: list[LocalTop] = [pickle.loads(a) for a in answers]
    return merge_tops(tops, limit, stm)
