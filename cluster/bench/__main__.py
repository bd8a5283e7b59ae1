"""``python -m cluster.bench ...``: the benchmark as a stand-alone command."""

import typer

from cluster.bench.cli import bench

if __name__ == "__main__":
    typer.run(bench)
