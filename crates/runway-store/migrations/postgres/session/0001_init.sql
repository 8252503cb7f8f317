-- Session catalog, PostgreSQL dialect (schema `session`). Only the hash of a session id is stored.
CREATE TABLE sessions (
    id_hash       TEXT   NOT NULL PRIMARY KEY,
    subject       TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at_ms);
