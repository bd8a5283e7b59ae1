-- Vector index replacing KATO's Qdrant collection `vectors_{kb_id}` (spec §5): exact nearest-k by
-- L2Distance. One row per (kb_id, name); the name (`VCTR|<sha1>`) determines the vector.
CREATE TABLE IF NOT EXISTS kato.vectors
(
    kb_id String,
    name String,
    vector Array(Float64),
    created_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY kb_id
ORDER BY (kb_id, name);
