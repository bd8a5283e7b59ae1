"""What the data looks like: API models, naming and hashing, DDL, Arrow schemas, Redis key names."""
