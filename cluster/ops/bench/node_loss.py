"""A Ray node lost under load, on several Ray nodes of this machine (prints figures and a JSON report).

    kato-cluster bench node-loss --patterns-per-shard 100000 --shards 4 --workers 2

Starts a Ray cluster of a head and ``--workers`` worker nodes (``ray.cluster_utils.Cluster``, the node-failure
detection of ``cluster.ops.node_failure``), an embedded Redis and ``--shards`` shard actors spread over the nodes
(each with its own chdb directory: one disk stands in for the shared store a real cluster needs). It loads
KATO's standard workload into one KB, then, while one client learns fresh patterns (some twice) into another KB
and one predicts on the first, kills the worker node holding the most shards without warning. It reports the time
from the loss to full service (every shard answering from a live node), what the clients saw meanwhile, whether
every acknowledged learn is there with its frequency, and whether the predictions are the ones from before.
"""

from __future__ import annotations

import collections
import json
import random
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.ops.bench.workloads import STANDARD_CONFIG, standard_patterns, standard_queries
from cluster.ops.embedded_redis import EmbeddedRedis
from cluster.ops.launcher import project_root
from cluster.ops.node_failure import NODE_FAILURE_DETECTION
from cluster.stores.pattern_log import LogKeys
from cluster.stores.redis_client import connect
from cluster.stores.redis_kb import RedisKB
from schema.errors import ShardUnavailable
from schema.learning import make_pattern
from schema.placement import even_ranges
from schema.rules.query import QueryOptions

STATIC_KB = "kb_node_loss_static"
LIVE_KB = "kb_node_loss_live"


@dataclass(frozen=True)
class NodeLossBench:
    patterns_per_shard: int = 100_000
    shards: int = 4
    workers: int = 2
    queries: int = 20
    after_seconds: float = 3.0  # load kept on after full service is back
    seed: int = 0
    report: str | None = None  # also write the report as JSON here


@dataclass
class _Clients:
    """What the learning and the predicting client saw."""

    stop: threading.Event = field(default_factory=threading.Event)
    acknowledged: collections.Counter = field(default_factory=collections.Counter)
    attempted: collections.Counter = field(default_factory=collections.Counter)
    learn_errors: list[str] = field(default_factory=list)
    predictions: int = 0
    unavailable: list[float] = field(default_factory=list)  # when a prediction was refused
    wrong: int = 0
    predict_errors: list[str] = field(default_factory=list)


def _learn(backend: Any, clients: _Clients, seed: int) -> None:
    rng = random.Random(seed)
    fresh = iter(standard_patterns(100_000, seed=seed + 7))
    done: list[list[list[str]]] = []
    while not clients.stop.is_set():
        events = rng.choice(done) if done and rng.random() < 0.2 else next(fresh)  # a fifth are learned again
        pattern = make_pattern(events)
        if pattern is None:  # standard patterns are never empty
            continue
        clients.attempted[pattern.name] += 1
        try:
            backend.learn(LIVE_KB, pattern, 5)
        except Exception as error:  # noqa: BLE001 - reported: an unacknowledged learn
            clients.learn_errors.append(f"{type(error).__name__}: {error}")
            continue
        clients.acknowledged[pattern.name] += 1
        done.append(events)


def _predict(backend: Any, clients: _Clients, queries: list, expected: list, options: QueryOptions) -> None:
    while not clients.stop.is_set():
        for query, want in zip(queries, expected):
            try:
                got = backend.predict(STATIC_KB, query, options)
            except ShardUnavailable:
                clients.unavailable.append(time.monotonic())
                time.sleep(0.05)
                continue
            except Exception as error:  # noqa: BLE001 - reported: neither an answer nor a 503
                clients.predict_errors.append(f"{type(error).__name__}: {error}")
                continue
            clients.predictions += 1
            clients.wrong += got != want


def _placement(shards: Any) -> dict[int, str]:
    return {s.shard_id: s.node_id for s in shards.stats()}


def _load(backend: Any, opts: NodeLossBench) -> tuple[float, list, list, QueryOptions]:
    """The static KB loaded; (seconds it took, queries, their predictions, options)."""
    corpus = standard_patterns(opts.patterns_per_shard * opts.shards, seed=opts.seed)
    started = time.monotonic()
    for start in range(0, len(corpus), 5000):
        chunk = [p for p in map(make_pattern, corpus[start:start + 5000]) if p is not None]
        backend.learn_batch(STATIC_KB, chunk, 5)
    seconds = time.monotonic() - started
    options = QueryOptions.from_config(STANDARD_CONFIG)
    queries = standard_queries(corpus, opts.queries, seed=opts.seed + 1)
    return seconds, queries, [backend.predict(STATIC_KB, q, options) for q in queries], options


def _lose(cluster: Any, victim: Any, shards: Any) -> tuple[float, float, dict[int, str]]:
    """Kill ``victim`` without warning; (when, when every shard answered again from a live node, placement)."""
    lost_at = time.monotonic()
    cluster.remove_node(victim, allow_graceful=False)
    while True:
        try:
            placement = _placement(shards)
            if victim.node_id not in placement.values():
                return lost_at, time.monotonic(), placement
        except ShardUnavailable:
            pass
        if time.monotonic() - lost_at > 300:
            raise TimeoutError("the shards of the lost node did not come back within 300 s")
        time.sleep(0.1)


def _checked(backend: Any, clients: _Clients) -> dict[str, Any]:
    """Every acknowledged learn of the live KB: there, and counted once per acknowledgement (at most once more
    per learn that failed after its commit)."""
    missing = [n for n in clients.acknowledged if backend.pattern_events(LIVE_KB, n) is None]
    frequency_off = [n for n, count in clients.acknowledged.items()
                     if not count <= int((backend.redis_kb.pattern_info(LIVE_KB, n) or {}).get("frequency", 0))
                     <= clients.attempted[n]]
    return {"learns_acknowledged": sum(clients.acknowledged.values()),
            "patterns_learned_twice_or_more": sum(1 for c in clients.acknowledged.values() if c > 1),
            "learns_failed": len(clients.learn_errors), "learn_errors": clients.learn_errors[:5],
            "acknowledged_missing": len(missing), "frequency_mismatches": len(frequency_off)}


def run(opts: NodeLossBench, data_dir: str) -> dict[str, Any]:
    """The whole scenario in ``data_dir``; returns the report."""
    import ray
    from ray.cluster_utils import Cluster

    from actors.ray_shard import RayShards, start_shard_actors
    from serve_app.cluster_backend import ClusterBackend

    redis_server = EmbeddedRedis(data_dir)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": NODE_FAILURE_DETECTION})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(opts.workers)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": project_root()}})
        _wait_for_resources(1 + opts.workers)
        namespace = f"node-loss-{uuid.uuid4().hex[:8]}"
        ranges = even_ranges(opts.shards)
        shards = RayShards(start_shard_actors([(r.shard_id, r.lo, r.hi) for r in ranges],
                                              [f"chdb://{Path(data_dir) / f'shard-{r.shard_id}'}/chdb" for r in ranges],
                                              namespace, redis_url=redis_server.url))
        backend = ClusterBackend(shards, ranges, RedisKB(connect(redis_server.url)), log_keys=LogKeys(namespace),
                                 index_wait=120.0)
        load_seconds, queries, expected, options = _load(backend, opts)
        before = _placement(shards)
        by_node = collections.Counter(before.values())
        victim = max(workers, key=lambda node: by_node.get(node.node_id, 0))
        clients = _Clients()
        threads = [threading.Thread(target=_learn, args=(backend, clients, opts.seed), daemon=True),
                   threading.Thread(target=_predict, args=(backend, clients, queries, expected, options), daemon=True)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        lost_at, recovered_at, placement = _lose(cluster, victim, shards)
        time.sleep(opts.after_seconds)
        clients.stop.set()
        for thread in threads:
            thread.join(timeout=180)
        refused = [t for t in clients.unavailable if t >= lost_at]
        return {
            "shards": opts.shards, "nodes": 1 + opts.workers, "patterns_per_shard": opts.patterns_per_shard,
            "load_seconds": round(load_seconds, 1),
            "placement_before": {str(k): v for k, v in before.items()},
            "placement_after": {str(k): v for k, v in placement.items()},
            "lost_node": victim.node_id, "shards_on_lost_node": by_node.get(victim.node_id, 0),
            "recovery_seconds": round(recovered_at - lost_at, 2),
            "last_refusal_after_loss_seconds": round(max(refused) - lost_at, 2) if refused else None,
            **_checked(backend, clients),
            "predictions_answered": clients.predictions, "predictions_refused_503": len(refused),
            "predictions_wrong": clients.wrong, "prediction_errors": clients.predict_errors[:5],
            "predictions_after_equal_before": [backend.predict(STATIC_KB, q, options) for q in queries] == expected,
        }
    finally:
        ray.shutdown()
        cluster.shutdown()
        redis_server.stop()


def _wait_for_resources(cpus: int, timeout: float = 60.0) -> None:
    """Until the scheduler counts every node's CPU: a node registered but not yet in its resource view is
    passed over by the shards' soft node affinity, and they all start on the head."""
    import ray

    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < cpus and time.monotonic() < deadline:
        time.sleep(0.2)


def main(opts: NodeLossBench) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kato-node-loss-") as data_dir:
        report = run(opts, data_dir)
    print(f"{report['shards']} shards on {report['nodes']} Ray nodes, {report['patterns_per_shard']:,} patterns per "
          f"shard (loaded in {report['load_seconds']} s); lost a node holding {report['shards_on_lost_node']} shards")
    print(f"full service {report['recovery_seconds']} s after the loss; meanwhile {report['predictions_refused_503']} "
          f"predictions refused (503), {report['predictions_wrong']} wrong, {report['predictions_answered']} answered")
    print(f"learns acknowledged {report['learns_acknowledged']} (failed {report['learns_failed']}); "
          f"acknowledged but missing {report['acknowledged_missing']}, frequency mismatches "
          f"{report['frequency_mismatches']}; predictions after == before: {report['predictions_after_equal_before']}")
    print(json.dumps(report))
    if opts.report:
        Path(opts.report).write_text(json.dumps(report, indent=2))
    return report
