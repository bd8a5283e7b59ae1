"""``kato-cluster bench http`` against a running service at a tiny size: every phase runs and reports what it
timed (no timing-dependent assertions)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cluster.ops.launcher import project_root

pytestmark = pytest.mark.integration


def test_bench_http_prints_latencies_and_the_throughput_of_concurrent_clients(base_url):
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "http", "--url", base_url, "--patterns", "300",
                           "--queries", "12", "--clients", "3", "--node", "bench_http_test"],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"bulk load: 300 patterns in [\d.]+ s", out), out
    assert re.search(r"^predictions: p50 [\d.]+ ms.*\(12 requests\), mean \d+ predictions each", out, re.M), out
    line = next(row for row in out.splitlines() if row.startswith("predictions with 3 concurrent clients"))
    assert "(12 requests)" in line  # every query of the throughput phase answered
    assert float(re.search(r"([\d.]+) predictions/s", line).group(1)) > 0
    assert re.search(r"the load generator took [\d.]+ CPU cores", line)
