"""Prediction load from Ray tasks: each task opens its own session and runs its share of the queries.

The task body only needs ``requests``; this module is pickled by value, so workers on other nodes of a
Ray cluster do not need the project installed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np


def query_share(url: str, node: str, config: dict[str, Any], queries: list, start_at: float) -> dict[str, Any]:
    """Run ``queries`` in one session (clear-stm, observe each event, GET predictions) from ``start_at``."""
    import requests

    http = requests.Session()
    response = http.post(f"{url}/sessions", json={"node_id": node, "config": config}, timeout=60)
    response.raise_for_status()
    base = f"{url}/sessions/{response.json()['session_id']}"
    predict_s: list[float] = []
    observe_s: list[float] = []
    counts: list[int] = []
    time.sleep(max(0.0, start_at - time.time()))
    first = time.time()
    for query in queries:
        http.post(f"{base}/clear-stm", timeout=60).raise_for_status()
        for event in query:
            t0 = time.perf_counter()
            http.post(f"{base}/observe", json={"strings": event}, timeout=600).raise_for_status()
            observe_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        answer = http.get(f"{base}/predictions", timeout=600)
        predict_s.append(time.perf_counter() - t0)
        answer.raise_for_status()
        counts.append(int(answer.json()["count"]))
    return {"predict_s": predict_s, "observe_s": observe_s, "counts": counts, "first": first, "last": time.time(),
            "host": os.uname().nodename}


def _noop() -> str:
    return os.uname().nodename


@contextlib.contextmanager
def ray_load(address: str | None, max_concurrency: int) -> Iterator[dict[str, Any]]:
    """A Ray runtime for the load tasks; yields a description of it. ``address`` None starts a private local
    Ray (``num_cpus = max_concurrency``, the service's own Ray is in another process and cannot be joined);
    ``"auto"`` or ``host:port`` joins an existing cluster and spreads the tasks over its nodes."""
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        mode = "cluster"
    else:
        ray.init(address="local", num_cpus=max_concurrency, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        mode = "local"
    try:
        warm = ray.remote(num_cpus=1)(_noop)
        hosts = ray.get([warm.options(scheduling_strategy="SPREAD").remote() for _ in range(max_concurrency)])
        yield {"mode": mode, "address": address, "nodes": len(ray.nodes()), "task_hosts": sorted(set(hosts)),
               "ray_cpus": float(ray.cluster_resources().get("CPU", 0))}
    finally:
        ray.shutdown()


def summarize(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean in milliseconds (numpy linear percentiles) and the sample count."""
    if not seconds:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0, "n": 0}
    ms = np.asarray(seconds) * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]).tolist()
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "mean_ms": float(ms.mean()), "n": int(ms.size)}


def run_load(url: str, node: str, config: dict[str, Any], queries: list, concurrency: int) -> dict[str, Any]:
    """Split ``queries`` over ``concurrency`` Ray tasks (SPREAD) started together; latency and throughput."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=0)(query_share)
    shares = [queries[i::concurrency] for i in range(concurrency)]
    start_at = time.time() + 1.0
    results = ray.get([task.options(scheduling_strategy="SPREAD").remote(url, node, config, share, start_at)
                       for share in shares if share])
    predict = [s for r in results for s in r["predict_s"]]
    wall = max(r["last"] for r in results) - min(r["first"] for r in results)
    requests_made = sum(2 * len(r["predict_s"]) + len(r["observe_s"]) for r in results)  # clear+observes+get
    return {"concurrency": concurrency, **summarize(predict),
            "queries_per_s": len(predict) / wall if wall > 0 else 0.0,
            "throughput_rps": requests_made / wall if wall > 0 else 0.0,
            "observe": summarize([s for r in results for s in r["observe_s"]]),
            "mean_predictions": float(np.mean([c for r in results for c in r["counts"]])),
            "hosts": sorted({r["host"] for r in results})}
