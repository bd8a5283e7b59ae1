"""A reshard while serving, over HTTP (prints figures; not a test).

    kato-cluster bench reshard --patterns 1000000 --from-shards 2 --to-shards 3

Starts a service on ``--from-shards`` shards (embedded engines), bulk-loads KATO's standard workload, then
reshards to ``--to-shards`` through the admin endpoint while ``--clients`` clients predict (observe two events
of a stored pattern, then ask for predictions) and one client learns. Prints the time the reshard took, the
rows and bytes it moved, prediction latency p50/p99 before and during the move, learn latency during it, the
write pause at the cut-over, and that every pattern is still there exactly once.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import dataclass

import requests

from cluster.ops import admin_client
from cluster.ops.bench.client import status_shards
from cluster.ops.bench.learning import Fresh, describe, learn_once, session, stream_load
from cluster.ops.bench.workloads import standard_patterns
from cluster.ops.launcher import start_detached, stop_detached
from schema.errors import LauncherError
from schema.settings import Settings

NODE = "bench_reshard"


@dataclass(frozen=True)
class ReshardBench:
    patterns: int = 1_000_000
    from_shards: int = 2
    to_shards: int = 3
    clients: int = 4
    port: int = 8767
    seed: int = 0


def main(opts: ReshardBench) -> None:
    with tempfile.TemporaryDirectory(prefix="kato-bench-") as data_dir:
        settings = Settings.from_env(data_dir=data_dir, port=opts.port, shards=opts.from_shards)
        process = start_detached(settings, timeout=300)
        try:
            run(f"http://127.0.0.1:{opts.port}", opts)
        finally:
            stop_detached(data_dir)
            process.wait(timeout=120)


class Predicting:
    """Clients asking for predictions on patterns of the corpus until stopped; latencies per phase."""

    def __init__(self, url: str, corpus: list[list[list[str]]], clients: int, seed: int) -> None:
        self.url, self.corpus = url, corpus
        self.phase = "before"
        self.samples: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.refused = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(seed + i,), daemon=True) for i in range(clients)]

    def _client(self, seed: int) -> None:
        http, rng = requests.Session(), random.Random(seed)
        base = session(http, self.url, NODE)
        while not self.stop.is_set():
            events = rng.choice(self.corpus)
            http.post(f"{base}/clear-stm", timeout=60)
            for event in events[:2]:
                http.post(f"{base}/observe", json={"strings": event}, timeout=60)
            phase = self.phase
            start = time.perf_counter()
            response = http.get(f"{base}/predictions", timeout=60)
            if response.status_code == 503:
                self.refused += 1
                continue
            response.raise_for_status()
            self.samples[phase].append(time.perf_counter() - start)

    def __enter__(self) -> Predicting:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def learning(url: str, stop: threading.Event, samples: list[float], seed: int) -> None:
    http, fresh = requests.Session(), Fresh(seed)
    base = session(http, url, NODE)
    while not stop.is_set():
        samples.append(learn_once(http, url, fresh, base))


def run(url: str, opts: ReshardBench) -> None:
    http = requests.Session()
    corpus = standard_patterns(opts.patterns, seed=opts.seed)
    seconds = stream_load(http, url, NODE, corpus)
    before = held(http, url)
    print(f"loaded {len(corpus):,} rows ({before:,} distinct patterns) on {opts.from_shards} shards in "
          f"{seconds:.1f} s")
    learns: list[float] = []
    stop_learning = threading.Event()
    with Predicting(url, corpus, opts.clients, opts.seed) as predicting:
        time.sleep(10)
        predicting.phase = "during"
        learner = threading.Thread(target=learning, args=(url, stop_learning, learns, opts.seed + 99), daemon=True)
        learner.start()
        start = time.perf_counter()
        try:
            progress = admin_client.reshard(url, opts.to_shards, say=lambda _line: None, poll_seconds=0.2)
        except LauncherError as error:
            raise SystemExit(str(error)) from error
        finally:
            stop_learning.set()
        took = time.perf_counter() - start
        learner.join(timeout=120)
        predicting.phase = "after"
        time.sleep(10)
    print(f"reshard {opts.from_shards} -> {opts.to_shards}: {took:.1f} s; {progress['rows_copied']:,} rows "
          f"({progress['bytes_copied'] / 1e6:,.0f} MB) copied, {progress['caught_up_rows']:,} caught up from the "
          f"logs; write pause at the cut-over {progress['write_pause_ms']:.1f} ms")
    for phase, samples in predicting.samples.items():
        if samples:
            print(describe(f"predictions {phase} the move ({opts.clients} clients)", samples))
    if learns:
        print(describe("learn calls during the move (1 client)", learns))
    print(f"503 answers during the run: {predicting.refused}")
    after, expected = held(http, url), before + len(learns)
    print(f"patterns held after the move: {after:,} "
          f"({'every pattern once' if after == expected else f'EXPECTED {expected:,}'})")


def held(http: requests.Session, url: str) -> int:
    return sum(s["patterns_per_kb"].get(f"{NODE}_kato", 0) for s in status_shards(http, url))

