"""A machine joins a running cluster with ``kato-cluster up --join``, takes the shards a reshard adds, and leaves.

The cluster is built as on several machines, here on one: a Ray head of its own (``ray start --head``, its own
temporary directory and token), the app deployed on it through ``serve_app.deployment:app_builder`` (what
``serve deploy serve_config.yaml`` runs) with a Redis server and a chdb directory per shard, then a second Ray
node added by the CLI.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from cluster.ops.bench.autoscale import end_processes_mentioning
from cluster.ops.bench.processes import processes, with_descendants
from cluster.ops.embedded_redis import EmbeddedRedis
from cluster.ops.launcher import project_root, wait_healthy
from cluster.ops.ports import free_port
from tests.e2e.kato_client import KatoClient
from tests.e2e.test_http_predictions import replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODE = "join_static"
CORPUS = [[[f"a{i}"], [f"b{i % 4}", "mid"], [f"c{i}"]] for i in range(24)]
LATER = [[[f"d{i}"], [f"b{i % 4}", "late"], [f"e{i}"]] for i in range(12)]
QUERIES = [[[f"a{i}"], [f"b{i % 4}", "mid"]] for i in (0, 5, 11)] + [[["b1", "late"]], [["mid"]]]

DRIVER = """
import sys, time
import ray
from ray import serve
from serve_app.deployment import app_builder

address, port, redis_url, data_dir = sys.argv[1:5]
ray.init(address=address, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": int(port)}, proxy_location="HeadOnly")
serve.run(app_builder({"redis": redis_url, "shards": "2", "data_dir": data_dir, "ingress": "proxy"}),
          name="kato", route_prefix="/")
print("deployed", flush=True)
while True:
    time.sleep(60)
"""


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster.ops.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=project_root())


def predictions(url: str, queries) -> list[list[dict]]:
    client = KatoClient(url, node_id=NODE)
    answers = []
    for query in queries:
        client.clear_stm()
        for event in query:
            client.observe(event)
        answers.append(client.predictions())
    return answers


def status(url: str) -> dict:
    return requests.get(f"{url}/status", timeout=30).json()


def placement(body: dict) -> dict[str, str]:
    return {p["processor_id"]: p["ray_node"] for p in body["processors"]["processors"]}


def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if found := check():
                return found
        except (requests.RequestException, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def scenario():
    root = Path(tempfile.mkdtemp(prefix="kato-join-"))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_SERVE_ENABLE_HA_PROXY": "0", "PYTHONPATH": project_root()}
    redis_server = EmbeddedRedis(root / "redis")
    redis_server.start()
    gcs, port = free_port(), free_port()
    address, url = f"127.0.0.1:{gcs}", f"http://127.0.0.1:{port}"
    joined_dir = root / "joined"
    driver = None
    facts: dict = {}
    try:
        subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={gcs}",
                        "--node-ip-address=127.0.0.1", f"--temp-dir={root / 'ray'}", "--num-cpus=2",
                        "--include-dashboard=false", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, address, str(port), redis_server.url,
                                   str(root / "data")], env=env, cwd=project_root(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_healthy(url, 300, driver)
        run_scenario(url, address, joined_dir, env, facts)
        yield facts
    finally:
        cli("down", "--data-dir", str(joined_dir), env=env)
        leftover = [pid for pid, p in processes(with_args=True).items() if str(joined_dir) in p.args]
        for pid in with_descendants(leftover, processes()):
            os.kill(pid, 9)
        if driver is not None:
            driver.kill()
        end_processes_mentioning(str(root / "ray"))
        redis_server.stop()


def run_scenario(url: str, address: str, joined_dir: Path, env: dict[str, str], facts: dict) -> None:
    teacher = KatoClient(url, node_id=NODE)
    for events in CORPUS:
        teacher.learn_sequence(events)
    facts["before"] = predictions(url, QUERIES)
    facts["nodes_before"] = len(status(url)["nodes"])

    joined = cli("up", "--join", address, "--data-dir", str(joined_dir), "--ingress", "proxy", "--detach", env=env)
    facts["join_output"] = joined.stdout + joined.stderr
    facts["join_code"] = joined.returncode
    until(lambda: sum(n["alive"] for n in status(url)["nodes"]) == 2, 60, "the joined node is not listed")
    facts["status_joined"] = cli("status", "--url", url, env=env).stdout

    resharded = cli("reshard", "--shards", "4", "--url", url, env=env)
    facts["reshard_code"], facts["reshard_output"] = resharded.returncode, resharded.stdout + resharded.stderr
    body = status(url)
    facts["nodes"] = [n["node_id"] for n in body["nodes"]]
    facts["placement_resharded"] = placement(body)
    facts["after_reshard"] = predictions(url, QUERIES)
    replay(url, seed=7, config={})  # random learns and predictions, every one checked against the reference

    for events in LATER:
        teacher.learn_sequence(events)
    facts["before_leave"] = predictions(url, QUERIES)
    left = cli("down", "--data-dir", str(joined_dir), env=env)
    facts["leave_code"], facts["leave_output"] = left.returncode, left.stdout + left.stderr
    started = time.monotonic()
    facts["placement_left"] = until(
        lambda: (p := placement(status(url))) and len(set(p.values())) == 1 and p, 120,
        "the left node's shards did not restart on the head")
    facts["after_leave"] = until(lambda: predictions(url, QUERIES), 120, "predictions did not come back")
    facts["recovery_seconds"] = time.monotonic() - started
    facts["nodes_alive_after"] = sum(n["alive"] for n in status(url)["nodes"])


def test_the_cli_joins_the_machine_and_status_lists_it(scenario):
    assert scenario["join_code"] == 0, scenario["join_output"]
    assert "joined the Ray cluster at 127.0.0.1:" in scenario["join_output"]
    assert scenario["nodes_before"] == 1
    lines = re.findall(r"^  node ([0-9a-f]{56}) \([\d.]+, alive, 2 CPUs, [\d.]+ GB\): (.*)$",
                       scenario["status_joined"], re.M)
    assert len(lines) == 2, scenario["status_joined"]
    assert sorted(held for _, held in lines) == ["no shards", "shard-0, shard-1"]


def test_the_shards_a_reshard_adds_go_to_the_node_holding_fewest(scenario):
    assert scenario["reshard_code"] == 0, scenario["reshard_output"]
    placed = scenario["placement_resharded"]
    assert len(placed) == 4 and set(placed.values()) == set(scenario["nodes"])
    assert sorted(Counter(placed.values()).values()) == [2, 2]  # two on the head, the two new on the joined node


def test_answers_do_not_change_when_a_node_joins_or_leaves(scenario):
    assert sum(bool(answer) for answer in scenario["before"]) >= 3  # the queries of the first corpus
    assert scenario["after_reshard"] == scenario["before"]
    assert scenario["after_leave"] == scenario["before_leave"]
    assert scenario["before_leave"] != scenario["before"]  # the later learns are predicted: the check can fail


def test_a_node_that_leaves_hands_its_shards_to_the_others(scenario):
    assert scenario["leave_code"] == 0, scenario["leave_output"]
    assert "stopped the process that owned" in scenario["leave_output"]
    assert scenario["nodes_alive_after"] == 1
    assert len(scenario["placement_left"]) == 4
    print(f"the left node's shards answered again {scenario['recovery_seconds']:.1f} s after it left")
