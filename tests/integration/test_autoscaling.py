"""The Ray autoscaler seen working (``kato-cluster bench autoscale``, Ray's fake multi-node provider): under load
Serve adds ingress replicas, the autoscaler adds a node for the one that does not fit, and both go back down
once the load stops. Runs in its own process: the fake cluster is a Ray of its own on this machine."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cluster.ops.launcher import project_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_replicas_and_nodes_scale_up_under_load_and_back_down():
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "autoscale", "--clients", "24",
                           "--patterns", "500", "--max-replicas", "2", "--port", "8796", "--gcs-port", "6392"],
                          cwd=project_root(), capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "replicas 1 -> 2 -> 1; nodes 1 -> 2 -> 1: scaled up and back down" in out, out
    samples = re.findall(r"load (on |off)  replicas (\d+) running of (\d+)  nodes (\d+)", out)
    assert any(load == "on " and int(nodes) == 2 for load, _, _, nodes in samples)  # a node added under load
    assert samples[-1][0] == "off" and samples[-1][1:] == ("1", "1", "1")
    assert re.search(r"stopped the fake cluster \(\d+ processes\)", out)
