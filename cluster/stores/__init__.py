"""Layer 2, the engines: ClickHouse pattern storage (embedded chdb or a server), per-KB statistics and sessions in
Redis, and the adapters that turn those libraries' failures into the project's errors."""
