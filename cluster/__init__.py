"""The runtime: settings, store engines (ClickHouse, Redis), shard map, Ray bootstrap, CLI, benchmarks."""
