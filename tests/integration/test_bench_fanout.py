"""``kato-cluster bench fanout`` at a tiny size: both phases run and print their figures (no time thresholds:
those are the benchmark's to print)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from actors.shard import Shard
from cluster.ops.bench.fanout import KB, fill
from cluster.ops.bench.workloads import standard_patterns
from cluster.ops.launcher import project_root
from schema.learning import make_pattern
from schema.placement import even_ranges

pytestmark = pytest.mark.integration


def test_bench_fanout_prints_the_single_shard_and_the_merge():
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "fanout", "--patterns", "3000", "--fanout", "4",
                           "--fanout-patterns", "4000", "--queries", "5"],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    added = re.match(r"one shard: ([\d,]+) patterns added in \d+ s, index \d+ B/pattern$", lines[0])
    assert added and int(added.group(1).replace(",", "")) == len(_distinct(3000)), done.stdout
    latency = r"p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms, mean [\d.]+ ms \(5 queries\)$"
    assert re.match(r"  its query \(Shard.query, in process\): " + latency, lines[1])
    assert re.match(r"4 shards of 1,000 patterns: answers of [\d,]+ candidates in all, \d+ kB pickled", lines[2])
    assert re.match(r"  decode \+ merge_tops of 4 answers: " + latency, lines[3])
    assert re.match(r"estimate for a query over 4 shards of 3,000: slowest shard ≈ single-shard p99 ", lines[4])


def test_fill_puts_every_pattern_on_the_shard_owning_its_home_bucket():
    shards = [Shard(r.shard_id, r.lo, r.hi) for r in even_ranges(3)]
    fill(shards, 2000)
    assert sum(s.count(KB) for s in shards) == len(_distinct(2000))
    for shard in shards:
        index = shard.kb(KB)
        buckets = index.buckets.view()
        assert len(index) > 0 and ((buckets >= shard.bucket_lo) & (buckets <= shard.bucket_hi)).all()


def _distinct(n: int) -> set[str]:
    return {p.name for p in map(make_pattern, standard_patterns(n, seed=0)) if p is not None}
