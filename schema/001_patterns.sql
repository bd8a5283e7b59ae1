-- Patterns in KATO's columns (spec §3.5) plus the home bucket, so a shard's bucket range is a
-- primary-key range read. ReplacingMergeTree + FINAL on read: re-inserting a (kb_id, name) never yields
-- two rows (the name determines the bucket, so duplicates share the whole sort key).
CREATE TABLE IF NOT EXISTS kato.patterns_data
(
    kb_id String,
    name String,
    pattern_data Array(Array(String)),
    length UInt32,
    token_set Array(String),
    token_count UInt32,
    minhash_sig Array(UInt32),
    lsh_bands Array(UInt64),
    first_token String,
    last_token String,
    bucket UInt32,
    created_at DateTime DEFAULT now(),
    updated_at DateTime DEFAULT now(),
    INDEX idx_name name TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_length length TYPE minmax GRANULARITY 4,
    INDEX idx_token_bloom token_set TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_token_count token_count TYPE minmax GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY kb_id
ORDER BY (kb_id, bucket, name)
SETTINGS index_granularity = 8192;
