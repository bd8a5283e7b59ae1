-- Versioned shard map: bucket range -> shard. Readers take the highest version.
CREATE TABLE IF NOT EXISTS kato.shard_map
(
    version UInt64,
    shard_id UInt32,
    bucket_lo UInt32,
    bucket_hi UInt32,
    created_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
ORDER BY (version, shard_id);
