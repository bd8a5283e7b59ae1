"""``kato-cluster bench memory`` against a running service at a tiny size: both sizes are loaded and reported,
with what could be measured there (no timing or size thresholds: those are the benchmark's to print)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cluster.ops.bench.memory import CHUNK, _chunks
from cluster.ops.bench.workloads import standard_patterns
from cluster.ops.launcher import project_root

pytestmark = pytest.mark.integration


def test_bench_memory_reports_each_size(base_url, embedded_redis):
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "memory", "--url", base_url,
                           "--redis", embedded_redis.url, "--patterns", "300,700", "--queries", "5"],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    sizes = [re.match(r"([\d,]+) patterns, loaded at [\d,]+/s .*index (\d+) B, shard RSS growth (.+?), "
                      r"Redis (-?\d+\.\d) B, ClickHouse disk not measured, Redis AOF not measured$", line)
             for line in lines[0::2]]
    assert all(sizes) and len(sizes) == 2, done.stdout
    patterns = [int(m.group(1).replace(",", "")) for m in sizes if m]
    # Redis is the test session's, shared with other tests: its memory may even shrink (expired sessions) meanwhile
    assert patterns[1] - patterns[0] == 400 and all(int(m.group(2)) > 20 for m in sizes if m)
    assert all(re.match(r"  predictions over HTTP: p50 [\d.]+ ms, p99 [\d.]+ ms \(5\)$", line) for line in lines[1::2])


def test_the_corpus_arrives_in_chunks_that_continue_where_the_last_size_stopped():
    whole = [p for chunk in _chunks(0, CHUNK + 10, seed=3) for p in chunk]
    resumed = [p for chunk in _chunks(0, 5, seed=3) for p in chunk] + [
        p for chunk in _chunks(5, CHUNK + 10, seed=3) for p in chunk]
    assert len(whole) == CHUNK + 10 and resumed == whole
    assert whole[:CHUNK] == standard_patterns(CHUNK, seed=3) and whole[CHUNK:] == standard_patterns(CHUNK, seed=4)[:10]
