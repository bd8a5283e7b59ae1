"""HTTP end-to-end benchmark on KATO's standard workload (prints figures; not a test).

    python -m cluster.bench_http --patterns 100000 --queries 200            # starts its own service
    python -m cluster.bench_http --url http://127.0.0.1:8000 --patterns 0   # an already loaded service
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import requests

from cluster.launcher import start_detached, stop_detached
from cluster.settings import Settings
from serve_app.workloads import standard_patterns, standard_queries


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name}: p50 {percentile(ms, 0.5):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
            f"p99 {percentile(ms, 0.99):.1f} ms, mean {statistics.mean(ms):.1f} ms ({len(ms)} requests)")


def bulk_load(http: requests.Session, url: str, node: str, patterns: list, batch: int = 5000) -> float:
    start = time.perf_counter()
    for lo in range(0, len(patterns), batch):
        body = {"node_id": node, "patterns": [{"events": p} for p in patterns[lo:lo + batch]]}
        http.post(f"{url}/bulk/learn", json=body, timeout=600).raise_for_status()
    return time.perf_counter() - start


def run(url: str, args: argparse.Namespace) -> None:
    http = requests.Session()
    patterns = standard_patterns(max(args.patterns, 1000), seed=args.seed)
    if args.patterns:
        seconds = bulk_load(http, url, args.node, patterns[:args.patterns])
        print(f"bulk load: {args.patterns} patterns in {seconds:.1f} s = {args.patterns / seconds:,.0f} patterns/s")
    queries = standard_queries(patterns[:max(args.patterns, 1000)], args.queries, seed=args.seed + 1)
    config = {"recall_threshold": 0.1, "max_predictions": 100}
    observe_times, predict_times, counts = [], [], []
    session = http.post(f"{url}/sessions", json={"node_id": args.node, "config": config}).json()["session_id"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running service; default: start one (embedded engines)")
    parser.add_argument("--patterns", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--node", default="bench_node")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.url:
        run(args.url.rstrip("/"), args)
        return
    with tempfile.TemporaryDirectory(prefix="kato-bench-") as data_dir:
        settings = Settings.from_env(data_dir=data_dir, port=args.port, shards=args.shards)
        start = time.perf_counter()
        process = start_detached(settings, timeout=300)
        print(f"service up in {time.perf_counter() - start:.1f} s ({args.shards} shards)")
        try:
            run(f"http://127.0.0.1:{args.port}", args)
        finally:
            stop_detached(data_dir)
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
