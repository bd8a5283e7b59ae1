"""The Ray autoscaler seen working on this machine: Serve scales the ingress up under load, the autoscaler adds
worker nodes for the replicas that do not fit, and both scale back down once the load stops (prints a log; not a
timed test).

    kato-cluster bench autoscale

It runs Ray's fake multi-node provider (``fake_multinode``, Ray's "Testing autoscaling locally"): the real
autoscaler, with its bin-packing and idle timeouts, launching "nodes" that are extra raylets on this machine.
Its cluster config is generated from ``ray_config.yaml`` (``fake_cluster_config``): the same cluster name, node
types and upscaling speed; the node sizes shrunk to this machine (a 1-CPU head and 1-CPU workers, as many as
``serve_config.yaml``'s maximum of replicas needs) and the idle timeout shortened. The Serve application is the
one ``serve_config.yaml`` deploys, with its autoscaling config and one CPU per replica; only Serve's up- and
downscale delays are shortened so that the run takes minutes. The cluster runs in a temporary directory of its
own and is stopped by ending exactly its processes (never ``ray stop``, which would end every Ray here).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from cluster.ops.bench.learning import stream_load
from cluster.ops.bench.processes import processes, with_descendants
from cluster.ops.bench.workloads import STANDARD_CONFIG, standard_patterns, standard_queries
from cluster.ops.embedded_redis import EmbeddedRedis
from cluster.ops.launcher import project_root

NODE = "autoscale_bench"


@dataclass(frozen=True)
class AutoscaleBench:
    clients: int = 48
    patterns: int = 2000
    load_seconds: float = 150.0  # at most: the load stops once the replicas and nodes are at their maximum
    settle_seconds: float = 180.0  # at most, for the scale-down
    port: int = 8795
    gcs_port: int = 6391
    upscale_delay_s: float = 2.0
    downscale_delay_s: float = 5.0
    idle_timeout_minutes: float = 0.1
    max_replicas: int | None = None  # default: serve_config.yaml's


@dataclass
class Sample:
    seconds: float
    load: bool
    replicas: int  # running
    wanted: int  # running, starting or waiting for a node
    nodes: int
    answered: int  # predictions answered since the previous sample


def fake_cluster_config(ray_config: dict[str, Any], serve_deployment: dict[str, Any], gcs_address: str,
                        idle_timeout_minutes: float) -> dict[str, Any]:
    """The fake-provider cluster config for ``ray_config.yaml``'s cluster (see the module doc)."""
    head_type = ray_config["head_node_type"]
    worker_type = next(t for t in ray_config["available_node_types"] if t != head_type)
    replica_cpus = int(serve_deployment["ray_actor_options"]["num_cpus"])
    workers = serve_deployment["autoscaling_config"]["max_replicas"] * replica_cpus - 1
    return {
        "cluster_name": ray_config["cluster_name"],
        "max_workers": min(workers, ray_config["max_workers"]),
        "upscaling_speed": ray_config["upscaling_speed"],
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs_address},
        "available_node_types": {
            head_type: {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            worker_type: {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0,
                          "max_workers": min(workers, ray_config["available_node_types"][worker_type]["max_workers"])},
        },
        "head_node_type": head_type,
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def deploy_files() -> tuple[dict[str, Any], dict[str, Any]]:
    """``ray_config.yaml`` and the KatoIngress deployment of ``serve_config.yaml``."""
    root = Path(project_root())
    ray_config = yaml.safe_load((root / "ray_config.yaml").read_text())
    serve_config = yaml.safe_load((root / "serve_config.yaml").read_text())
    deployment = next(d for d in serve_config["applications"][0]["deployments"] if d["name"] == "KatoIngress")
    return ray_config, deployment


class FakeCluster:
    """A fake multi-node Ray cluster whose processes all name ``root`` (their session lives there)."""

    def __init__(self, root: Path, config: dict[str, Any], gcs_port: int) -> None:
        self.root = root
        self.config = config
        self.gcs_port = gcs_port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    def start(self) -> None:
        config_file = self.root / "fake_cluster.yaml"
        config_file.write_text(json.dumps(self.config))
        env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        ray_cli = str(Path(sys.executable).with_name("ray"))
        subprocess.run([ray_cli, "start", "--head", f"--autoscaling-config={config_file}", f"--port={self.gcs_port}",
                        "--node-ip-address=127.0.0.1", f"--temp-dir={self.root / 'ray'}", "--num-cpus=1",
                        "--include-dashboard=false", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=120)

    def stop(self) -> int:
        """End every process of this cluster (those naming its directory, and their descendants)."""
        return end_processes_mentioning(str(self.root / "ray"))


def end_processes_mentioning(text: str) -> int:
    table = processes(with_args=True)
    chosen = with_descendants((pid for pid, p in table.items() if text in p.args and pid != os.getpid()), table)
    for pid in chosen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(chosen)


def main(opts: AutoscaleBench) -> int:
    # the cluster's own token, for `ray start` and this driver (read when Ray is first imported)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
    ray_config, deployment = deploy_files()
    if opts.max_replicas is not None:
        deployment["autoscaling_config"]["max_replicas"] = opts.max_replicas
    with tempfile.TemporaryDirectory(prefix="kato-autoscale-") as tmp:
        root = Path(tmp)
        redis_server = EmbeddedRedis(root / "redis")
        cluster = FakeCluster(root, fake_cluster_config(ray_config, deployment, f"127.0.0.1:{opts.gcs_port}",
                                                        opts.idle_timeout_minutes), opts.gcs_port)
        redis_server.start()
        cluster.start()
        try:
            return run(opts, cluster, deployment, redis_server.url, root)
        finally:
            ended = cluster.stop()
            redis_server.stop()
            print(f"stopped the fake cluster ({ended} processes)")


def run(opts: AutoscaleBench, cluster: FakeCluster, deployment: dict[str, Any], redis_url: str, root: Path) -> int:
    import ray
    from ray import serve

    from cluster.stores.engines import open_redis
    from cluster.stores.shard_map import ShardMapStore
    from schema.settings import Settings
    from serve_app.deployment import ingress_application, open_shards

    ray.init(address=cluster.address, log_to_driver=False)
    settings = Settings.from_env(data_dir=str(root / "data"), redis=redis_url, shards=2)
    open_shards(settings, redis_url, ShardMapStore(open_redis(redis_url), settings.namespace))
    autoscaling = {**deployment["autoscaling_config"], "upscale_delay_s": opts.upscale_delay_s,
                   "downscale_delay_s": opts.downscale_delay_s}
    serve.start(http_options={"host": "127.0.0.1", "port": opts.port}, proxy_location="HeadOnly")
    serve.run(ingress_application(settings, redis_url, autoscaling, deployment["ray_actor_options"]),
              name="kato", route_prefix="/")
    url = f"http://127.0.0.1:{opts.port}"
    corpus = standard_patterns(opts.patterns, seed=0)
    stream_load(requests.Session(), url, NODE, corpus)
    print(f"fake cluster from ray_config.yaml: {json.dumps(cluster.config['available_node_types'])}; "
          f"Serve autoscaling {json.dumps(autoscaling)}; {opts.clients} clients")
    minimum, maximum = autoscaling["min_replicas"], autoscaling["max_replicas"]
    monitor = Monitor(lambda: _replicas(serve), lambda: sum(n["Alive"] for n in ray.nodes()),
                      standard_queries(corpus, opts.clients))
    samples = monitor.watch(
        opts, url, lambda s: s.replicas >= maximum and s.nodes >= cluster.config["max_workers"] + 1,
        lambda s: s.replicas <= minimum and s.nodes == 1)
    peak_replicas, peak_nodes = max(s.replicas for s in samples), max(s.nodes for s in samples)
    last = samples[-1]
    ok = peak_replicas > minimum and peak_nodes > 1 and last.replicas <= minimum and last.nodes == 1
    print(f"replicas {minimum} -> {peak_replicas} -> {last.replicas}; nodes 1 -> {peak_nodes} -> {last.nodes}: "
          f"{'scaled up and back down' if ok else 'DID NOT scale up and back down'}")
    serve.shutdown()
    ray.shutdown()
    return 0 if ok else 1


def _replicas(serve: Any) -> tuple[int, int]:
    """(running, wanted: running, starting or waiting for a node) replicas of the ingress."""
    app = serve.status().applications.get("kato")
    if app is None or "KatoIngress" not in app.deployments:
        return 0, 0
    states = app.deployments["KatoIngress"].replica_states
    return int(states.get("RUNNING", 0)), int(sum(n for state, n in states.items() if state != "STOPPING"))


class Monitor:
    """Samples the replica and node counts every second while clients load the service, then after."""

    def __init__(self, replicas: Callable[[], tuple[int, int]], nodes: Callable[[], int],
                 queries: list[list[list[str]]]
                 ) -> None:
        self.replicas = replicas
        self.nodes = nodes
        self.queries = queries
        self.answered = 0
        self.lock = threading.Lock()

    def watch(self, opts: AutoscaleBench, url: str, scaled_up: Callable[[Sample], bool],
              scaled_down: Callable[[Sample], bool]) -> list[Sample]:
        stop = threading.Event()
        threads = [threading.Thread(target=self._client, args=(url, i, stop), daemon=True)
                   for i in range(opts.clients)]
        start = time.monotonic()
        samples: list[Sample] = []
        for t in threads:
            t.start()
        while time.monotonic() - start < opts.load_seconds:
            samples.append(self._sample(start, True))
            if scaled_up(samples[-1]):
                break
        stop.set()
        for t in threads:
            t.join(timeout=60)
        unloaded = time.monotonic()
        while time.monotonic() - unloaded < opts.settle_seconds:
            samples.append(self._sample(start, False))
            if scaled_down(samples[-1]):
                break
        return samples

    def _sample(self, start: float, load: bool) -> Sample:
        time.sleep(1.0)
        with self.lock:
            answered, self.answered = self.answered, 0
        running, wanted = self.replicas()
        sample = Sample(time.monotonic() - start, load, running, wanted, self.nodes(), answered)
        print(f"{sample.seconds:6.1f} s  load {'on ' if load else 'off'}  replicas {running} running of "
              f"{wanted}  nodes {sample.nodes}  predictions/s {answered}", flush=True)
        return sample

    def _client(self, url: str, index: int, stop: threading.Event) -> None:
        http = requests.Session()
        sid = http.post(f"{url}/sessions", json={"node_id": NODE, "config": STANDARD_CONFIG}, timeout=120).json()
        base = f"{url}/sessions/{sid['session_id']}"
        for event in self.queries[index % len(self.queries)]:
            http.post(f"{base}/observe", json={"strings": event}, timeout=120)
        while not stop.is_set():
            if http.get(f"{base}/predictions", timeout=120).status_code == 200:
                with self.lock:
                    self.answered += 1
