"""``kato-cluster bench learn`` against a running service at a tiny size: every phase runs and reports what it
timed (no timing-dependent assertions)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cluster.ops.launcher import project_root

pytestmark = pytest.mark.integration


def test_bench_learn_prints_every_phase_of_the_write_path(base_url):
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "learn", "--url", base_url, "--patterns", "200",
                           "--learns", "6", "--clients", "1,2", "--seconds", "1", "--sequences", "4",
                           "--single-learns", "0"],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"bulk load \(streamed Arrow\): 200 patterns in [\d.]+ s", out), out
    assert re.search(r"^learn call \(after 3-8 observes\): p50 [\d.]+ ms, .*\(6\)$", out, re.M), out
    for clients in (1, 2):
        rate = re.search(rf"^observe \+ learn, {clients} client\(s\): ([\d.,]+) patterns/s", out, re.M)
        assert rate and float(rate.group(1).replace(",", "")) > 0, out
    assert re.search(r"^observe-sequence of 15 .*, one session: p50 [\d.]+ ms, .*\(4\)$", out, re.M), out
    assert re.search(r"^the same, a new session per call: p50 [\d.]+ ms, .*\(4\)$", out, re.M), out
