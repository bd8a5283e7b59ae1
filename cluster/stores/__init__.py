"""Layer 2, the engines: ClickHouse pattern and vector storage (embedded chdb or a server), per-KB statistics,
pending vectors and sessions in Redis, and the adapters that turn those libraries' failures into the project's
errors."""
