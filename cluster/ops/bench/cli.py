"""``kato-cluster bench ...``: every benchmark of the project, as sub-commands of one CLI.

``run`` is the full runner (ingest, latency and throughput, observe/learn, recall, memory, with the baselines side
by side; results.json, results.md, plots); ``shards``, ``http`` and ``storage`` time one layer each and print
their figures.

Load generation: the prediction load comes from Ray tasks, one session each. A service started by
``start_detached`` runs its Ray cluster inside another process, which a driver cannot join, so by default
the benchmark starts a private local Ray (``num_cpus`` = the highest concurrency) next to it; with
``--ray-address auto`` (or ``host:port``) it joins an existing Ray cluster instead and the tasks are
spread over its nodes (``SPREAD`` scheduling), all calling ``--url``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cluster.ops.bench.workloads import WORKLOADS


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise typer.BadParameter(f"{name} must be comma-separated integers, got {text!r}") from error
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{name} needs positive integers, got {text!r}")
    return values


bench_app = typer.Typer(help="Benchmarks: the full runner and one per layer.", no_args_is_help=True)


@bench_app.command("run")
def bench(
    url: str = typer.Option(None, "--url", help="A running service; default: start one (temp data dir) and stop "
                                                "it at the end."),
    patterns: str = typer.Option("10000", "--patterns", help="Corpus sizes N[,N...]; each in its own node id."),
    queries: int = typer.Option(200, "--queries", min=1, help="Prediction queries per corpus size."),
    concurrency: str = typer.Option("1,4", "--concurrency", help="Concurrent clients C[,C...] (Ray tasks)."),
    shards: int = typer.Option(2, "--shards", min=1, help="Shard actors of the service it starts."),
    workload: str = typer.Option("standard", "--workload", help="standard | zipf | neardup."),
    out: Path = typer.Option(Path("./bench-out"), "--out", help="Directory for results.json, results.md, PNGs."),
    seed: int = typer.Option(0, "--seed", help="Seed of every workload and query choice."),
    check: list[str] = typer.Option(None, "--check", help="Threshold metric<=value or metric>=value on "
                                                          "results.json paths (repeatable), e.g. "
                                                          "predictions.p50_ms<=25; exit 1 if any fails."),
    skip_baselines: bool = typer.Option(False, "--skip-baselines", help="Skip the reference engine and "
                                                                         "MinHashLSH baselines."),
    reference_queries: int = typer.Option(5, "--reference-queries", min=1,
                                          help="Queries timed on the reference engine and compared with HTTP."),
    ray_address: str = typer.Option(None, "--ray-address", help="Join this Ray cluster ('auto' or host:port) "
                                                                "for the load tasks; default: a private local Ray."),
    results: Path = typer.Option(None, "--results", help="Only evaluate --check against this results.json "
                                                         "(no run)."),
) -> None:
    """Benchmark ingest, predictions (latency, throughput), observe/learn, minhash recall and memory, with the
    reference engine and datasketch MinHashLSH side by side; write results.json, results.md and plots."""
    from cluster.ops.bench.check import failed_checks, parse_check

    try:
        checks = [parse_check(c) for c in check or []]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--check") from error
    if results is not None:
        document = json.loads(results.read_text())
    else:
        if workload not in WORKLOADS:
            raise typer.BadParameter(f"choose one of {', '.join(WORKLOADS)}", param_hint="--workload")
        document = _run(url, _ints(patterns, "--patterns"), queries, _ints(concurrency, "--concurrency"), shards,
                        workload, out, seed, skip_baselines, reference_queries, ray_address)
    failures = failed_checks(document, checks)
    for failure in failures:
        typer.echo(f"check failed: {failure}", err=True)
    if failures:
        raise typer.Exit(1)
    if checks:
        typer.echo(f"all {len(checks)} checks hold")


def _run(url: str | None, patterns: list[int], queries: int, concurrency: list[int], shards: int, workload: str,
         out: Path, seed: int, skip_baselines: bool, reference_queries: int, ray_address: str | None) -> dict:
    from cluster.ops.bench.report import write_outputs
    from cluster.ops.bench.runner import BenchOptions, run_benchmark
    from cluster.ops.launcher import project_root

    opts = BenchOptions(url=url, patterns=patterns, queries=queries, concurrency=concurrency, shards=shards,
                        workload=workload, seed=seed, skip_baselines=skip_baselines,
                        reference_queries=reference_queries, ray_address=ray_address)
    document = run_benchmark(opts, project_root())
    for path in write_outputs(document, out):
        typer.echo(f"wrote {path}")
    typer.echo((out / "results.md").read_text())
    return document


@bench_app.command("shards")
def shards_command(patterns: int = typer.Option(100_000, help="Corpus size of the standard workload."),
                   shards: int = typer.Option(2, help="In-process shards."),
                   queries: int = typer.Option(200, help="Prediction queries to time."),
                   reference_queries: int = typer.Option(3, help="Queries timed on the reference engine.")) -> None:
    """The sharded predictor in process against the reference engine, on KATO's standard workload."""
    from cluster.ops.bench.shards import ShardsBench, main

    main(ShardsBench(patterns, shards, queries, reference_queries))


@bench_app.command("http")
def http_command(url: str = typer.Option(None, help="A running service; default: start one (embedded engines)."),
                 patterns: int = typer.Option(100_000, help="Patterns to bulk-load first (0: use what is there)."),
                 queries: int = typer.Option(200, help="Prediction queries to time."),
                 shards: int = typer.Option(2, help="Shards of the service it starts."),
                 port: int = typer.Option(8765, help="Port of the service it starts."),
                 node: str = typer.Option("bench_node", help="Node id the patterns are learned into."),
                 seed: int = typer.Option(0, help="Seed of the workload."),
                 clients: int = typer.Option(8, min=0, help="Concurrent sessions of the throughput phase (0: skip)."),
                 ) -> None:
    """HTTP end to end: bulk load, then observe and predictions latency, the HTTP path's own cost, and the
    predictions/s of concurrent clients."""
    from cluster.ops.bench.http_latency import HttpBench, main

    main(HttpBench(url, patterns, queries, shards, port, node, seed, clients))


@bench_app.command("storage")
def storage_command(patterns: int = typer.Option(100_000, help="Patterns to insert."),
                    batch: int = typer.Option(100_000, help="Patterns per chdb insert."),
                    redis_batch: int = typer.Option(5_000, help="Patterns per Redis learn batch."),
                    redis_patterns: int = typer.Option(None, help="Patterns learned into Redis (default: --patterns).")
                    ) -> None:
    """The engines alone: chdb inserts and range reads, batched Redis statistics."""
    from cluster.ops.bench.storage import StorageBench, main

    main(StorageBench(patterns, batch, redis_batch, redis_patterns))


@bench_app.command("learn")
def learn_command(url: str = typer.Option(None, help="A running service; default: start one (embedded engines)."),
                  patterns: int = typer.Option(100_000, help="Corpus bulk-loaded first (streamed Arrow)."),
                  learns: int = typer.Option(300, help="Learn calls to time (after a few observes each)."),
                  clients: str = typer.Option("1,8", help="Concurrent clients C[,C...] for observe + learn."),
                  seconds: float = typer.Option(20.0, help="Seconds each observe + learn rate runs."),
                  sequences: int = typer.Option(200, help="observe-sequence calls (15 tokens, learn_at_end)."),
                  single_learns: int = typer.Option(10_000, help="Single learns before counting parts."),
                  shards: int = typer.Option(2, help="Shards of the service it starts."),
                  port: int = typer.Option(8766, help="Port of the service it starts.")) -> None:
    """The write path: bulk ingest, learn latency, learning rate, observe-sequence, ClickHouse parts."""
    from cluster.ops.bench.learning import LearnBench, main

    main(LearnBench(url, patterns, learns, tuple(_ints(clients, "--clients")), seconds, sequences, single_learns,
                    shards, port))


@bench_app.command("memory")
def memory_command(patterns: str = typer.Option("1000000", help="Corpus sizes N[,N...], loaded one after another."),
                   queries: int = typer.Option(200, help="Prediction queries timed at each size."),
                   shards: int = typer.Option(2, help="Shards of the service it starts."),
                   port: int = typer.Option(8768, help="Port of the service it starts."),
                   url: str = typer.Option(None, help="A running service instead (measures what it can reach)."),
                   redis: str = typer.Option(None, help="With --url: its Redis, to measure."),
                   data_dir: str = typer.Option(None, "--data-dir", help="With --url: its data directory, to "
                                                                          "measure the disk."),
                   redis_layout: str = typer.Option("kato", "--redis-layout",
                                                    help="Redis layout of the service it starts: kato or compact.")
                   ) -> None:
    """Bytes per pattern (shard index, shard RSS growth, Redis, ClickHouse and AOF on disk) and predictions
    p50/p99 over HTTP at each corpus size."""
    from cluster.ops.bench.memory import MemoryBench, main

    main(MemoryBench(tuple(_ints(patterns, "--patterns")), queries, shards, port, url=url, redis=redis,
                     data_dir=data_dir, redis_layout=redis_layout))


@bench_app.command("reload")
def reload_command(patterns: int = typer.Option(1_000_000, help="Patterns in the one shard's range."),
                   runs: int = typer.Option(3, help="Restarts timed, each in a fresh process.")) -> None:
    """A shard's restart: the seconds to reload its range from its store, and the resident memory it holds."""
    from cluster.ops.bench.reload import ReloadBench, main

    main(ReloadBench(patterns, runs))


@bench_app.command("fanout")
def fanout_command(patterns: int = typer.Option(1_000_000, help="Patterns in the one large shard timed."),
                   fanout: int = typer.Option(100, help="Shards whose answers are merged."),
                   fanout_patterns: int = typer.Option(1_000_000, help="Patterns those shards share."),
                   queries: int = typer.Option(200, help="Queries timed.")) -> None:
    """A query fanned out to many shards: one large shard's query time, the decode and merge of many answers."""
    from cluster.ops.bench.fanout import FanoutBench, main

    main(FanoutBench(patterns, fanout, fanout_patterns, queries))


@bench_app.command("reshard")
def bench_reshard(patterns: int = typer.Option(1_000_000, help="Patterns bulk-loaded before the move."),
                  from_shards: int = typer.Option(2, "--from-shards", help="Shards of the service it starts."),
                  to_shards: int = typer.Option(3, "--to-shards", help="Shards to reshard to while serving."),
                  clients: int = typer.Option(4, help="Clients predicting during the move."),
                  port: int = typer.Option(8767, help="Port of the service it starts.")) -> None:
    """A reshard while serving: its time, rows and bytes moved, prediction latency before/during/after, learn
    latency during it, the write pause at the cut-over."""
    from cluster.ops.bench.resharding import ReshardBench, main

    main(ReshardBench(patterns, from_shards, to_shards, clients, port))


@bench_app.command("node-loss")
def bench_node_loss(patterns_per_shard: int = typer.Option(100_000, "--patterns-per-shard", min=1,
                                                           help="Patterns loaded per shard before the loss."),
                    shards: int = typer.Option(4, min=1, help="Shard actors, spread over the nodes."),
                    workers: int = typer.Option(2, min=1, help="Worker nodes besides the head; one is lost."),
                    queries: int = typer.Option(20, min=1, help="Prediction queries the predicting client cycles."),
                    report: str = typer.Option(None, help="Also write the report as JSON to this file.")) -> None:
    """A Ray node lost under load on several Ray nodes of this machine: time to full service, what the clients
    saw meanwhile, every acknowledged learn and its frequency afterwards."""
    from cluster.ops.bench.node_loss import NodeLossBench, main

    main(NodeLossBench(patterns_per_shard, shards, workers, queries, report=report))


@bench_app.command("autoscale")
def bench_autoscale(clients: int = typer.Option(48, min=1, help="Concurrent clients asking for predictions."),
                    patterns: int = typer.Option(2000, min=1, help="Patterns loaded before the load starts."),
                    port: int = typer.Option(8795, help="HTTP port of the Serve application."),
                    gcs_port: int = typer.Option(6391, help="Port of the fake cluster's head (GCS)."),
                    max_replicas: int = typer.Option(None, min=2, help="Ingress replicas at most; default: "
                                                                       "serve_config.yaml's.")) -> None:
    """The Ray autoscaler seen working: a fake multi-node cluster generated from ray_config.yaml, the Serve
    application of serve_config.yaml, load until the replicas and nodes are at their maximum, then none until
    both are back at their minimum. Prints the replica and node counts every second; exit 1 if they did not
    scale up and back down."""
    from cluster.ops.bench.autoscale import AutoscaleBench, main

    raise typer.Exit(main(AutoscaleBench(clients, patterns, port=port, gcs_port=gcs_port, max_replicas=max_replicas)))
