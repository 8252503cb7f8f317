-- Log catalog, PostgreSQL dialect (schema `log`). `id` is the monotonic cursor used by `--follow`.
CREATE TABLE log_entries (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    kind        TEXT   NOT NULL CHECK (kind IN ('request', 'output', 'error', 'platform')),
    level       TEXT   NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    app         TEXT,
    version     TEXT,
    frontend    TEXT,
    request_id  TEXT,
    method      TEXT,
    path        TEXT,
    status      BIGINT,
    duration_us BIGINT,
    bytes_out   BIGINT,
    stream      TEXT,
    message     TEXT
);
CREATE INDEX log_entries_app_id ON log_entries (app, id);
CREATE INDEX log_entries_kind_id ON log_entries (kind, id);
CREATE INDEX log_entries_at_ms ON log_entries (at_ms);
