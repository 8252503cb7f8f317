-- Per-app key-value usage, kept in the same transaction as every key-value
-- write, so the per-app quota (keys, bytes of keys and values) holds under
-- concurrency without counting the app's rows on each write.
CREATE TABLE kv_usage (
    app        TEXT   NOT NULL PRIMARY KEY,
    key_count  BIGINT NOT NULL,
    byte_count BIGINT NOT NULL
);

INSERT INTO kv_usage (app, key_count, byte_count)
SELECT app, COUNT(*), COALESCE(SUM(LENGTH(CAST(key AS BLOB)) + LENGTH(value)), 0)
FROM kv_entries GROUP BY app;
