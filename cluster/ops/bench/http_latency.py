"""HTTP end-to-end benchmark on KATO's standard workload (prints figures; not a test).

    kato-cluster bench http --patterns 100000 --queries 200            # starts its own service
    kato-cluster bench http --url http://127.0.0.1:8000 --patterns 0   # an already loaded service

After the one-client latencies, ``--clients`` sessions run the queries concurrently (threads of this process;
each query is a clear-stm, its observes and a GET of the predictions) and the throughput is printed with the CPU
the load generator itself took, so it can be told apart from the service's.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import dataclass

import requests

from cluster.ops.bench.client import bulk_learn
from cluster.ops.bench.workloads import standard_patterns, standard_queries
from cluster.ops.launcher import start_detached, stop_detached
from schema.settings import Settings


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(name: str, seconds: list[float], unit: str = "requests") -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name}: p50 {percentile(ms, 0.5):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
            f"p99 {percentile(ms, 0.99):.1f} ms, mean {statistics.mean(ms):.1f} ms ({len(ms)} {unit})")


def run(url: str, opts: HttpBench) -> None:
    http = requests.Session()
    patterns = standard_patterns(max(opts.patterns, 1000), seed=opts.seed)
    if opts.patterns:
        seconds, _names = bulk_learn(http, url, opts.node, patterns[:opts.patterns])
        print(f"bulk load: {opts.patterns} patterns in {seconds:.1f} s = {opts.patterns / seconds:,.0f} patterns/s")
    queries = standard_queries(patterns[:max(opts.patterns, 1000)], opts.queries, seed=opts.seed + 1)
    config = {"recall_threshold": 0.1, "max_predictions": 100}
    observe_times, predict_times, counts = [], [], []
    session = http.post(f"{url}/sessions", json={"node_id": opts.node, "config": config}).json()["session_id"]
    base = f"{url}/sessions/{session}"
    for query in queries:
        http.post(f"{base}/clear-stm").raise_for_status()
        for event in query:
            t0 = time.perf_counter()
            http.post(f"{base}/observe", json={"strings": event}).raise_for_status()
            observe_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        response = http.get(f"{base}/predictions")
        predict_times.append(time.perf_counter() - t0)
        response.raise_for_status()
        counts.append(response.json()["count"])
    print(describe("predictions", predict_times) + f", mean {statistics.mean(counts):.0f} predictions each")
    print(describe("observe (its predictions are computed after it answers)", observe_times))
    floor = []
    for _ in range(100):
        t0 = time.perf_counter()
        http.get(f"{url}/").raise_for_status()
        floor.append(time.perf_counter() - t0)
    print(describe("GET / (no work: the HTTP path's own cost)", floor))
    if opts.clients > 0:
        throughput(url, opts, queries, config)


def _client(url: str, node: str, config: dict, queries: list, start: threading.Barrier, times: list[float]) -> None:
    http = requests.Session()
    session = http.post(f"{url}/sessions", json={"node_id": node, "config": config}).json()["session_id"]
    base = f"{url}/sessions/{session}"
    start.wait()
    for query in queries:
        http.post(f"{base}/clear-stm").raise_for_status()
        for event in query:
            http.post(f"{base}/observe", json={"strings": event}).raise_for_status()
        t0 = time.perf_counter()
        http.get(f"{base}/predictions").raise_for_status()
        times.append(time.perf_counter() - t0)


def throughput(url: str, opts: HttpBench, queries: list, config: dict) -> None:
    """Predictions per second with ``opts.clients`` concurrent sessions sharing ``queries``."""
    times: list[float] = []
    start = threading.Barrier(opts.clients + 1)
    workers = [threading.Thread(target=_client, args=(url, opts.node, config, queries[i::opts.clients], start, times))
               for i in range(opts.clients)]
    for worker in workers:
        worker.start()
    start.wait()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(describe(f"predictions with {opts.clients} concurrent clients", times)
          + f"; {len(times) / wall:.1f} predictions/s (each after a clear-stm and its observes); "
          f"the load generator took {cpu / wall:.2f} CPU cores")


@dataclass(frozen=True)
class HttpBench:
    url: str | None = None  # a running service; default: start one (embedded engines)
    patterns: int = 100_000
    queries: int = 200
    shards: int = 2
    port: int = 8765
    node: str = "bench_node"
    seed: int = 0
    clients: int = 8  # concurrent sessions of the throughput phase (0: skip it)


def main(opts: HttpBench) -> None:
    if opts.url:
        run(opts.url.rstrip("/"), opts)
        return
    with tempfile.TemporaryDirectory(prefix="kato-bench-") as data_dir:
        settings = Settings.from_env(data_dir=data_dir, port=opts.port, shards=opts.shards)
        start = time.perf_counter()
        process = start_detached(settings, timeout=300)
        print(f"service up in {time.perf_counter() - start:.1f} s ({opts.shards} shards)")
        try:
            run(f"http://127.0.0.1:{opts.port}", opts)
        finally:
            stop_detached(data_dir)
            process.wait(timeout=60)
