"""Throwaway storage benchmark: chdb insert and range-read rates, batched Redis statistics rate.

    kato-cluster bench storage --patterns 1000000
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass

from cluster.ops.embedded_redis import EmbeddedRedis
from cluster.stores.clickhouse import ChdbStore
from cluster.stores.redis_kb import RedisKB
from schema.learning import LearnedPattern
from schema.naming import pattern_hash
from schema.pattern_rows import pattern_table


def synthetic(n: int, seed: int = 1, vocab_size: int = 1000) -> list[LearnedPattern]:
    rng = random.Random(seed)
    vocab = [f"w{i:04d}" for i in range(vocab_size)]
    out = []
    for _ in range(n):
        events = [sorted(rng.sample(vocab, rng.randint(1, 3))) for _ in range(rng.randint(3, 8))]
        out.append(LearnedPattern(name=pattern_hash(events), events=events,
                                  emotives=[{"joy": rng.random()}] if rng.random() < 0.1 else []))
    return out


@dataclass(frozen=True)
class StorageBench:
    patterns: int = 100_000
    batch: int = 100_000  # patterns per chdb insert
    redis_batch: int = 5_000  # patterns per learn_batch
    redis_patterns: int | None = None  # default: patterns


def main(opts: StorageBench) -> None:
    n = opts.patterns

    t = time.perf_counter()
    patterns = synthetic(n)
    print(f"generated {n:,} patterns in {time.perf_counter() - t:.1f} s")

    with tempfile.TemporaryDirectory(prefix="kato-bench-") as tmp:
        store = ChdbStore(f"{tmp}/chdb")
        store.apply_ddl()
        kb = "bench_kato"
        build = insert = 0.0
        for i in range(0, n, opts.batch):
            t = time.perf_counter()
            table = pattern_table(kb, patterns[i:i + opts.batch])
            build += time.perf_counter() - t
            t = time.perf_counter()
            store.insert_patterns(table)
            insert += time.perf_counter() - t
        print(f"rows (minhash+arrow): {n / build:,.0f} patterns/s ({build:.1f} s)")
        print(f"chdb insert:          {n / insert:,.0f} patterns/s ({insert:.1f} s)")

        t = time.perf_counter()
        rows = sum(b.num_rows for b in store.iter_bucket_range(kb, 0, 65535))
        full = time.perf_counter() - t
        print(f"chdb range read (all buckets, Arrow): {rows / full:,.0f} rows/s ({rows:,} rows, {full:.1f} s)")
        t = time.perf_counter()
        rows = sum(b.num_rows for b in store.iter_bucket_range(kb, 0, 65535 // 8))
        part = time.perf_counter() - t
        print(f"chdb range read (1/8 of buckets):     {rows / part:,.0f} rows/s ({rows:,} rows, {part:.2f} s)")
        store.close()

        m = opts.redis_patterns or n
        with EmbeddedRedis(tmp) as server:
            import redis

            client = redis.Redis.from_url(server.url, decode_responses=True)
            rk = RedisKB(client)
            t = time.perf_counter()
            for i in range(0, m, opts.redis_batch):
                rk.learn_batch(kb, patterns[i:i + opts.redis_batch], 5)
            took = time.perf_counter() - t
            print(f"redis learn_batch:    {m / took:,.0f} patterns/s ({m:,} patterns, {took:.1f} s, "
                  f"AOF fsync always)")
            t = time.perf_counter()
            for i in range(0, min(m, 100_000), 100):
                chunk = patterns[i:i + 100]
                rk.corpus_stats(kb, [p.name for p in chunk], {s for p in chunk for s in p.symbols})
            took = time.perf_counter() - t
            q = min(m, 100_000) // 100
            print(f"redis corpus_stats (100 names each): {q / took:,.0f} queries/s")
            client.close()
