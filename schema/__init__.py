"""Layer 0, KATO's data model: API models, names and hashes, session config, settings, the error family, events
and session state, learned patterns and their Arrow rows, MinHash and bucket placement, ClickHouse DDL."""
