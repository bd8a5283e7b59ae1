"""Layer 5, the operator layer: the launcher and local Ray cluster, the ``kato-cluster`` CLI, moving patterns in
and out, and the benchmarks; the only code that may import the service."""
