-- The shard map moved to Redis (kato:shard_map:{namespace}), where a reshard changes it atomically with the
-- learns it routes; the table of 003 was never read.
DROP TABLE IF EXISTS kato.shard_map;
