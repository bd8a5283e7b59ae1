"""Layer 3, the shard: its pattern index, filter stages, compiled scoring kernels, the shard bound to its store,
the nodes' vector index, and the thin Ray actor around it."""
