-- Pre-aggregated request series for the dashboard's charts: one row per app
-- (`''` = requests that named no running app), bucket width (60 000 ms for
-- the last hour, 900 000 ms for the last day) and bucket start. Written by
-- the log writer in the transaction that inserts the request rows (one
-- upsert per app and bucket per batch); charts never scan `log_entries`.
-- `l0`..`l14` count requests by duration: at most 1, 2.5, 5, 10, 25, 50, 100,
-- 250, 500, 1 000, 2 500, 5 000, 10 000, 30 000 ms, and longer (`l14`).
CREATE TABLE request_rollups (
    app             TEXT   NOT NULL,
    width_ms        BIGINT NOT NULL,
    bucket_ms       BIGINT NOT NULL,
    requests        BIGINT NOT NULL,
    errors          BIGINT NOT NULL,
    duration_us_sum BIGINT NOT NULL,
    l0  BIGINT NOT NULL, l1  BIGINT NOT NULL, l2  BIGINT NOT NULL, l3  BIGINT NOT NULL,
    l4  BIGINT NOT NULL, l5  BIGINT NOT NULL, l6  BIGINT NOT NULL, l7  BIGINT NOT NULL,
    l8  BIGINT NOT NULL, l9  BIGINT NOT NULL, l10 BIGINT NOT NULL, l11 BIGINT NOT NULL,
    l12 BIGINT NOT NULL, l13 BIGINT NOT NULL, l14 BIGINT NOT NULL,
    PRIMARY KEY (width_ms, bucket_ms, app)
);
CREATE INDEX request_rollups_app ON request_rollups (app, width_ms, bucket_ms);
-- The dashboard's request log: by request id (detail page, an error's
-- output), by status and by front-end, newest first (keyset on id).
CREATE INDEX log_entries_request_id ON log_entries (request_id);
CREATE INDEX log_entries_status_id ON log_entries (status, id);
CREATE INDEX log_entries_frontend_id ON log_entries (frontend, id);
