"""Several Ray nodes on this machine: shards spread over them, a node holding shards killed under load.

The scenario runs in its own process (``kato-cluster bench node-loss``): it needs a Ray cluster of its own
(``ray.cluster_utils.Cluster``), which cannot share a process with the test session's local Ray.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cluster.ops.launcher import project_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("node-loss") / "report.json"
    done = subprocess.run([sys.executable, "-m", "cluster.ops.bench", "node-loss", "--patterns-per-shard", "400",
                           "--shards", "4", "--workers", "2", "--queries", "8", "--report", str(path)],
                          cwd=project_root(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "full service" in done.stdout and "s after the loss" in done.stdout  # the recovery time is printed
    return json.loads(path.read_text())


def test_shards_are_spread_over_the_nodes(report):
    before = report["placement_before"]
    assert len(before) == 4 and len(set(before.values())) == 3  # round robin over 3 nodes: each holds one or two
    assert report["shards_on_lost_node"] >= 1


def test_the_lost_nodes_shards_restart_on_the_nodes_still_alive(report):
    after = report["placement_after"]
    assert set(after) == set(report["placement_before"])
    assert report["lost_node"] not in after.values()
    moved = [s for s, node in report["placement_before"].items() if node == report["lost_node"]]
    assert all(after[s] != report["lost_node"] for s in moved)
    assert report["recovery_seconds"] > 0


def test_every_acknowledged_learn_survives_with_its_frequency(report):
    assert report["learns_acknowledged"] > 0 and report["patterns_learned_twice_or_more"] > 0
    assert report["learns_failed"] == 0, report["learn_errors"]
    assert report["acknowledged_missing"] == 0
    assert report["frequency_mismatches"] == 0


def test_predictions_are_refused_or_right_never_wrong(report):
    assert report["prediction_errors"] == []
    assert report["predictions_wrong"] == 0
    assert report["predictions_answered"] > 0
    assert report["predictions_refused_503"] > 0  # while the shards were away: ShardUnavailable, a 503
    assert report["predictions_after_equal_before"] is True
