"""``python -m cluster.ops.bench ...``: the benchmarks as a stand-alone command (same as ``kato-cluster bench``)."""

from cluster.ops.bench.cli import bench_app

if __name__ == "__main__":
    bench_app()
