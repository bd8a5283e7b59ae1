"""The process table the benchmarks read from /proc: a tree's CPU and its descendants, and ending exactly the
processes that name a marker (``bench autoscale`` stops its fake cluster that way)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from cluster.ops.bench.autoscale import end_processes_mentioning
from cluster.ops.bench.learning import ServiceCpu
from cluster.ops.bench.processes import processes, with_descendants


def _tree(marker: str) -> subprocess.Popen:
    """A shell naming ``marker`` whose child (a sleep) does not."""
    return subprocess.Popen(["/bin/sh", "-c", f": {marker}; sleep 60 & wait"])


def _children_of(pid: int) -> set[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = with_descendants([pid], processes()) - {pid}
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child")


def test_descendants_and_their_cpu():
    parent = _tree(uuid.uuid4().hex)
    try:
        children = _children_of(parent.pid)
        table = processes()
        assert all(table[c].parent == parent.pid for c in children)
        assert os.getpid() not in with_descendants([parent.pid], table)
        busy = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                                 "while time.process_time() - t < 0.3: pass\ntime.sleep(60)"])
        try:
            time.sleep(1.0)
            assert ServiceCpu(busy.pid).seconds() >= 0.3
            assert ServiceCpu(None).seconds() is None
        finally:
            busy.kill()
            busy.wait()
    finally:
        parent.kill()
        parent.wait()


def test_ending_the_processes_that_name_a_marker_ends_their_children_and_nothing_else():
    marker = f"kato-marker-{uuid.uuid4().hex}"
    mine, other = _tree(marker), _tree(uuid.uuid4().hex)
    try:
        children = _children_of(mine.pid)
        assert marker in processes(with_args=True)[mine.pid].args
        assert end_processes_mentioning(marker) == 1 + len(children)
        assert mine.wait(timeout=10) != 0
        deadline = time.monotonic() + 10
        while not all(_ended(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_ended(c) for c in children)  # the child that does not name it went with its parent
        assert other.poll() is None  # a process that does not name the marker is left alone
    finally:
        other.kill()
        other.wait()


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for its new parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
