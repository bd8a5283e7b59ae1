"""The shard: its index, filter stages, scoring kernels, and the thin Ray actor around it."""
