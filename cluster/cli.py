"""The ``kato-cluster`` command. Until the HTTP service lands it runs the engine demo and the benchmarks."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(help="kato-cluster: a KATO-compatible pattern memory and prediction service on Ray.",
                  no_args_is_help=True)


@app.command()
def demo() -> None:
    """Learn a few sequences in-process and print KATO's predictions (no services needed)."""
    from serve_app.demo import main

    main()


@app.command("bench-shards")
def bench_shards(patterns: int = typer.Option(100_000, help="Corpus size of the standard workload."),
                 shards: int = typer.Option(2, help="In-process shards."),
                 queries: int = typer.Option(200, help="Prediction queries to time.")) -> None:
    """Time the sharded predictor against the reference engine on KATO's standard workload."""
    from cluster import bench_shards as bench

    sys.argv = ["bench-shards", "--patterns", str(patterns), "--shards", str(shards), "--queries", str(queries)]
    bench.main()


if __name__ == "__main__":
    app()
