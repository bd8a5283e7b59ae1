"""Run the whole benchmark: start (or reach) a service, run every phase, return the results document."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import requests

from cluster.ops.bench import baselines, phases
from cluster.ops.bench.client import bulk_learn, shard_count
from cluster.ops.bench.environment import environment
from cluster.ops.bench.load import ray_load
from cluster.ops.bench.progress import Steps
from cluster.ops.bench.workloads import build_workload, neardup_corpus, neardup_params
from cluster.ops.ports import free_port

HEADLINE_THRESHOLD = 0.7
RECALL_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
RECALL_CORPUS_CAP = 10_000
SCHEMA_VERSION = 1


@dataclass
class BenchOptions:
    """Everything a run depends on (recorded in ``results.json``)."""

    url: str | None = None
    patterns: list[int] = field(default_factory=lambda: [10_000])
    queries: int = 200
    concurrency: list[int] = field(default_factory=lambda: [1, 4])
    shards: int = 2
    workload: str = "standard"
    seed: int = 0
    skip_baselines: bool = False
    reference_queries: int = 5
    learn_samples: int = 20
    ray_address: str | None = None
    thresholds: tuple[float, ...] = RECALL_THRESHOLDS


@contextlib.contextmanager
def service(url: str | None, shards: int) -> Iterator[tuple[str, bool]]:
    """``url`` as is, or a service of our own (``start_detached`` in a temp data dir, stopped at the end)."""
    if url:
        yield url.rstrip("/"), False
        return
    from cluster.ops.launcher import LOG_FILE, start_detached, stop_detached
    from schema.errors import LauncherError
    from schema.settings import Settings

    with tempfile.TemporaryDirectory(prefix="kato-bench-") as data_dir:
        settings = Settings.from_env(data_dir=data_dir, port=free_port(), shards=shards, store="", redis="")
        try:
            process = start_detached(settings, timeout=300)
        except LauncherError as error:
            log = Path(data_dir) / LOG_FILE
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
            raise LauncherError(f"{error}\n--- service log (tail) ---\n{tail}") from error
        try:
            yield f"http://{settings.host}:{settings.port}", True
        finally:
            with contextlib.suppress(Exception):
                stop_detached(data_dir)
            with contextlib.suppress(Exception):
                process.wait(timeout=60)


def _size_phases(http: requests.Session, url: str, opts: BenchOptions, workload, size: int, run_id: str,
                 steps: Steps) -> dict[str, Any]:
    node = f"{run_id}-{workload.name}-{size}"
    corpus = workload.corpus[:size]
    steps.start(f"ingest {size:,} patterns")
    figures, _names = phases.ingest(http, url, node, corpus)
    queries = workload.queries(size, opts.queries, opts.seed + 1)
    load = []
    for c in opts.concurrency:
        steps.start(f"predictions at {size:,} patterns, concurrency {c}")
        load.extend(phases.prediction_load(url, node, workload.config, queries, [c]))
    out: dict[str, Any] = {"patterns": size, "node_id": node, **figures, "predictions": load}
    if not opts.skip_baselines:
        steps.start(f"reference engine at {size:,} patterns")
        sample = queries[:opts.reference_queries]
        answers = phases.http_answers(http, url, node, workload.config, sample)
        out["reference"] = baselines.reference_baseline(corpus, sample, workload.config, answers)
        out["reference"]["speedup_p50"] = out["reference"]["p50_ms"] / max(load[0]["p50_ms"], 1e-9)
    steps.start(f"observe and learn at {size:,} patterns")
    fresh = build_workload(workload.name, opts.learn_samples, opts.seed + 1000).corpus
    out.update(phases.observe_learn(http, url, node, workload.config, fresh))
    return out


def _recall_phase(http: requests.Session, url: str, opts: BenchOptions, run_id: str, steps: Steps
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    size = min(max(opts.patterns), RECALL_CORPUS_CAP)
    node = f"{run_id}-recall"
    corpus = neardup_corpus(size, seed=opts.seed + 7)
    steps.start(f"recall: ingest {len(corpus):,} near-duplicates, exact truth")
    _seconds, names = bulk_learn(http, url, node, corpus)
    picks = np.random.default_rng(opts.seed + 8).integers(0, len(corpus), size=opts.queries).tolist()
    queries = [corpus[i] for i in picks]
    jaccard = baselines.exact_jaccard(corpus, queries)
    truths = {t: baselines.truth_sets(jaccard, names, t) for t in opts.thresholds}
    steps.start("recall: minhash pipeline vs exact path")
    cluster = phases.recall_curve(http, url, node, queries, truths)
    exact_found = cluster.pop("exact")
    found = exact_found.pop("found")
    for point in cluster["curve"]:
        point["exact_path_recall"] = baselines.recall(found, truths[point["threshold"]])
    headline = next(p for p in cluster["curve"] if abs(p["threshold"] - HEADLINE_THRESHOLD) < 1e-9)
    recall = {"corpus_patterns": len(corpus), "queries": len(queries), "truth_threshold": HEADLINE_THRESHOLD,
              "truth_pairs": headline["truth_pairs"], "minhash_pipeline": headline["recall"],
              "exact_path": headline["exact_path_recall"], "minhash_pipeline_p50_ms": headline["p50_ms"],
              "exact_path_p50_ms": exact_found["p50_ms"], "workload": neardup_params(), "curve": cluster["curve"]}
    lsh = None
    if not opts.skip_baselines:
        steps.start("recall: datasketch MinHashLSH")
        lsh = baselines.minhash_lsh_baseline(corpus, names, queries, truths, HEADLINE_THRESHOLD)
        recall["minhash_lsh"] = lsh["recall"]
        for point, lsh_point in zip(recall["curve"], lsh["curve"]):
            point["minhash_lsh_recall"] = lsh_point["recall"]
            point["minhash_lsh_p50_ms"] = lsh_point["p50_ms"]
    return recall, lsh


def total_steps(opts: BenchOptions) -> int:
    per_size = 2 + len(opts.concurrency) + (0 if opts.skip_baselines else 1)
    return 1 + per_size * len(opts.patterns) + 2 + (0 if opts.skip_baselines else 1)


def _summary(results: dict[str, Any]) -> None:
    """Top-level figures for the largest corpus (what ``--check`` and the headline table read), and ratios."""
    largest = results["sizes"][-1]
    first = largest["predictions"][0]
    results["ingest"] = largest["ingest"]
    results["predictions"] = {**{k: first[k] for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")},
                              "concurrency": first["concurrency"], "patterns": largest["patterns"],
                              "throughput_rps_max": max(p["throughput_rps"] for p in largest["predictions"]),
                              "queries_per_s_max": max(p["queries_per_s"] for p in largest["predictions"])}
    results["observe"], results["learn"], results["memory"] = largest["observe"], largest["learn"], largest["memory"]
    ratios: dict[str, Any] = {}
    if "reference" in largest:
        results["reference"] = largest["reference"]
        ratios["reference_speedup_p50"] = largest["reference"]["speedup_p50"]
    lsh = results.get("minhash_lsh")
    if lsh:
        recall = results["recall"]
        ratios["cluster_ingest_vs_lsh_insert"] = results["ingest"]["patterns_per_s"] / lsh["insert_per_s"]
        ratios["cluster_ingest_vs_datasketch_signatures"] = (results["ingest"]["patterns_per_s"]
                                                             / lsh["signatures_per_s_datasketch"])
        ratios["lsh_query_vs_cluster_minhash_latency"] = lsh["p50_ms"] / max(recall["minhash_pipeline_p50_ms"], 1e-9)
        ratios["recall_minus_lsh_recall"] = recall["minhash_pipeline"] - recall["minhash_lsh"]
    results["ratios"] = ratios


def run_benchmark(opts: BenchOptions, root: str) -> dict[str, Any]:
    """Run every phase and return the results document (see ``cluster.ops.bench.schema``)."""
    opts.patterns = sorted(set(opts.patterns))
    opts.concurrency = sorted(set(opts.concurrency))
    run_id = f"bench{opts.seed}-{int(time.time())}"
    started = datetime.now(timezone.utc).isoformat()
    workload = build_workload(opts.workload, max(opts.patterns), opts.seed)
    http = requests.Session()
    with Steps(total_steps(opts)) as steps:
        steps.start("service: " + (opts.url or f"starting {opts.shards} shards"))
        with service(opts.url, opts.shards) as (url, own):
            shards = shard_count(http, url)
            with ray_load(opts.ray_address, max(opts.concurrency)) as ray_info:
                sizes = [_size_phases(http, url, opts, workload, size, run_id, steps) for size in opts.patterns]
            recall, lsh = _recall_phase(http, url, opts, run_id, steps)
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "timestamp": started,
        "finished": datetime.now(timezone.utc).isoformat(),
        "environment": {**environment(root), "shards": shards},
        "params": {**asdict(opts), "url": opts.url, "started_service": own, "workload_params": workload.params,
                   "workload_config": workload.config, "load_generator": ray_info},
        "sizes": sizes, "recall": recall,
    }
    if lsh is not None:
        results["minhash_lsh"] = lsh
    _summary(results)
    return results
