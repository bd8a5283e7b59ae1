"""The write path over HTTP on KATO's standard workload (prints figures; not a test).

    kato-cluster bench learn --patterns 100000                 # starts its own service, loads, then measures
    kato-cluster bench learn --patterns 1000000 --learns 0     # bulk ingest alone

Phases: a streamed bulk load of the corpus (Arrow IPC, rows/s, server CPU per pattern); the learn call after a
few observes (p50/p99); learning through observe + learn from 1 and from 8 clients (patterns/s, server CPU per
pattern); an observe-sequence of 15 one-token observations with ``learn_at_end`` (the call text trainers make
per chunk), in one session and in a new session per call; then 10,000 single learns and the ClickHouse parts
they left (inserts stay bounded).
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import requests

from cluster.ops.bench.client import status_shards
from cluster.ops.bench.processes import processes, with_descendants
from cluster.ops.bench.workloads import standard_patterns
from cluster.ops.launcher import start_detached, stop_detached
from cluster.ops.transfer import IpcChunks
from schema.settings import Settings

CONFIG = {"recall_threshold": 0.1, "max_predictions": 100}


@dataclass(frozen=True)
class LearnBench:
    url: str | None = None
    patterns: int = 100_000
    learns: int = 300
    clients: tuple[int, ...] = (1, 8)
    seconds: float = 20.0
    sequences: int = 200
    single_learns: int = 10_000
    shards: int = 2
    port: int = 8766
    seed: int = 0


def main(opts: LearnBench) -> None:
    if opts.url:
        run(opts.url.rstrip("/"), opts, None)
        return
    with tempfile.TemporaryDirectory(prefix="kato-bench-") as data_dir:
        settings = Settings.from_env(data_dir=data_dir, port=opts.port, shards=opts.shards)
        process = start_detached(settings, timeout=300)
        try:
            run(f"http://127.0.0.1:{opts.port}", opts, process.pid)
        finally:
            stop_detached(data_dir)
            process.wait(timeout=60)


def run(url: str, opts: LearnBench, service_pid: int | None) -> None:
    http = requests.Session()
    cpu = ServiceCpu(service_pid)
    corpus = standard_patterns(opts.patterns, seed=opts.seed)
    if corpus:
        before = cpu.seconds()
        seconds = stream_load(http, url, "bench_learn", corpus)
        print(f"bulk load (streamed Arrow): {len(corpus):,} patterns in {seconds:.1f} s = "
              f"{len(corpus) / seconds:,.0f} patterns/s; {cpu.per(before, len(corpus))}")
    fresh = Fresh(opts.seed + 1)
    if opts.learns:
        samples = [learn_once(http, url, fresh) for _ in range(opts.learns)]
        print(describe("learn call (after 3-8 observes)", samples))
    for clients in opts.clients:
        before = cpu.seconds()
        done = learning_rate(url, fresh, clients, opts.seconds)
        print(f"observe + learn, {clients} client(s): {done / opts.seconds:,.1f} patterns/s; "
              f"{cpu.per(before, done)}")
    if opts.sequences:
        trainer = session(http, url)
        samples = [sequence_once(http, url, fresh, trainer) for _ in range(opts.sequences)]
        print(describe("observe-sequence of 15 one-token observations, learn_at_end, one session", samples))
        samples = [sequence_once(http, url, fresh) for _ in range(opts.sequences)]
        print(describe("the same, a new session per call", samples))
    if opts.single_learns:
        single_learns(http, url, fresh, opts.single_learns)


def describe(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p = lambda f: ms[min(len(ms) - 1, int(f * len(ms)))]  # noqa: E731
    return f"{name}: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, mean {statistics.mean(ms):.1f} ms ({len(ms)})"


class Fresh:
    """Patterns of the standard shapes that nothing has learned yet (a counter makes each one new)."""

    def __init__(self, seed: int) -> None:
        self.shapes = standard_patterns(2000, seed=seed)
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> list[list[str]]:
        with self.lock:
            self.count += 1
            n = self.count
        shape = self.shapes[n % len(self.shapes)]
        return [[*event, f"fresh_{n}"] if i == 0 else event for i, event in enumerate(shape)]


def session(http: requests.Session, url: str, node: str = "bench_learn") -> str:
    response = http.post(f"{url}/sessions", json={"node_id": node, "config": CONFIG}, timeout=60)
    response.raise_for_status()
    return f"{url}/sessions/{response.json()['session_id']}"


def learn_once(http: requests.Session, url: str, fresh: Fresh, base: str | None = None) -> float:
    base = base or session(http, url)
    for event in fresh.next():
        http.post(f"{base}/observe", json={"strings": event}, timeout=60).raise_for_status()
    start = time.perf_counter()
    http.post(f"{base}/learn", timeout=60).raise_for_status()
    return time.perf_counter() - start


def learning_rate(url: str, fresh: Fresh, clients: int, seconds: float) -> int:
    """Patterns learned through observe + learn by ``clients`` threads in ``seconds``."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        http = requests.Session()
        base = session(http, url)
        while time.monotonic() < stop:
            learn_once(http, url, fresh, base)
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def sequence_once(http: requests.Session, url: str, fresh: Fresh, base: str | None = None) -> float:
    """One observe-sequence call; in ``base`` as a trainer's loop makes them (the next call replaces the pending
    observe-time predictions of this one, so they are never computed), or in a new session (they are, after)."""
    base = base or session(http, url)
    tokens = [s for event in fresh.next() for s in event][:15]
    body: dict[str, Any] = {"observations": [{"strings": [t]} for t in tokens], "learn_at_end": True}
    start = time.perf_counter()
    http.post(f"{base}/observe-sequence", json=body, timeout=60).raise_for_status()
    return time.perf_counter() - start


def single_learns(http: requests.Session, url: str, fresh: Fresh, count: int) -> None:
    base = session(http, url, "bench_parts")
    start = time.perf_counter()
    for _ in range(count):
        for event in fresh.next()[:2]:
            http.post(f"{base}/observe", json={"strings": event}, timeout=60).raise_for_status()
        http.post(f"{base}/learn", timeout=60).raise_for_status()
    seconds = time.perf_counter() - start
    time.sleep(3)  # one flush interval and then some
    logs = [s["log"] for s in status_shards(http, url)]
    print(f"{count:,} single learns in {seconds:.1f} s ({count / seconds:,.0f}/s): "
          f"{sum(log['store_inserts'] for log in logs)} ClickHouse inserts in all, "
          f"active parts per shard {[log['store_parts'] for log in logs]}, "
          f"rows waiting {sum(log['rows'] for log in logs)}")


def stream_load(http: requests.Session, url: str, node: str,
                corpus: list[list[list[str]]] | Iterable[list[list[list[str]]]]) -> float:
    """Bulk-learn a corpus (or an iterable of corpus chunks, generated as they are sent) in one streamed Arrow
    request; returns the seconds it took."""
    chunks = [corpus] if isinstance(corpus, list) else corpus
    start = time.perf_counter()
    response = http.post(f"{url}/bulk/learn", params={"node_id": node, "batch": "10000"}, timeout=7200,
                         data=arrow_stream(chunks), headers={"content-type": "application/vnd.apache.arrow.stream"})
    response.raise_for_status()
    return time.perf_counter() - start


def arrow_stream(chunks: Iterable[list[list[list[str]]]], rows: int = 20_000) -> Iterator[bytes]:
    schema = pa.schema([pa.field("events", pa.list_(pa.list_(pa.string())))])
    sink = IpcChunks()
    writer = sink.writer(schema)
    for corpus in chunks:
        for start in range(0, len(corpus), rows):
            writer.write_batch(pa.record_batch([pa.array(corpus[start:start + rows], schema.field("events").type)],
                                               schema=schema))
            yield sink.take()
    writer.close()
    yield sink.take()


class ServiceCpu:
    """CPU seconds (user + system) of the service's processes: the launcher and every descendant (Ray's
    processes, the shards, the replicas, the embedded Redis)."""

    def __init__(self, root_pid: int | None) -> None:
        self.root = root_pid

    def seconds(self) -> float | None:
        if self.root is None:
            return None
        table = processes()
        return sum(table[pid].cpu_seconds for pid in with_descendants([self.root], table) if pid in table)

    def per(self, before: float | None, patterns: int) -> str:
        after = self.seconds()
        if before is None or after is None or not patterns:
            return "server CPU not measured (service not started here)"
        return f"server CPU {1e6 * (after - before) / patterns:,.0f} µs per pattern"
