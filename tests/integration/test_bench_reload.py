"""``kato-cluster bench reload`` at a tiny size: the store is filled, every restart reloads all of it in a fresh
process and reports its figures (no time or size thresholds: those are the benchmark's to print)."""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import sys

import pytest

from cluster.ops.bench.reload import fill, measure_fresh
from cluster.ops.bench.workloads import standard_patterns
from cluster.ops.launcher import project_root
from schema.learning import make_pattern

pytestmark = pytest.mark.integration


def test_bench_reload_reloads_every_stored_pattern_in_each_run():
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "reload", "--patterns", "3000", "--runs", "2"],
                          cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.match(r"filled one shard's store with 3,000 patterns in [\d.]+ s$", lines[0]), done.stdout
    runs = [re.match(r"run \d: reloaded ([\d,]+) patterns in [\d.]+ s; resident memory grew -?\d+ B/pattern "
                     r"\(index (\d+) B/pattern\)$", line) for line in lines[1:3]]
    assert all(runs), done.stdout
    assert all(int(m.group(1).replace(",", "")) == _distinct_patterns(3000) for m in runs if m)
    assert all(int(m.group(2)) > 20 for m in runs if m)
    assert re.match(r"median of 2: reload [\d.]+ s, [\d,]+ patterns/s, resident growth -?\d+ B/pattern$", lines[3])


def test_a_reload_indexes_what_was_filled(tmp_path):
    path = str(tmp_path / "chdb")  # filled and read in other processes: one embedded engine per process
    filler = multiprocessing.get_context("spawn").Process(target=fill, args=(path, 500))
    filler.start()
    filler.join()
    assert filler.exitcode == 0
    result = measure_fresh(path)
    assert result.patterns == _distinct_patterns(500) > 400
    assert result.index_bytes > 0


def _distinct_patterns(n: int) -> int:
    return len({p.name for p in map(make_pattern, standard_patterns(n, seed=0)) if p is not None})
