-- The write-ahead log is trimmed once an insert of its rows returns: make that insert durable on disk
-- (ClickHouse does not fsync by default). Inserts come in batches (about one a second per shard), so the
-- fsync costs little.
ALTER TABLE kato.patterns_data MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1;
ALTER TABLE kato.vectors MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1;
