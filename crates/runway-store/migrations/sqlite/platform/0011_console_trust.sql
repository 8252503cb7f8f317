-- Platform catalog, issue 9 parts 6 and 7 (environment side), sqlite dialect;
-- the other dialect's 0011_console_trust.sql is the same.

-- The console this environment trusts (one), as it pushed itself through
-- PUT /_runway/api/v1/console-trust: its key (tokens carry
-- iss = runway-console:<console_id>) and the audience its tokens for this
-- environment carry (the environment's key on that console).
CREATE TABLE console_trust (
    singleton     BIGINT NOT NULL PRIMARY KEY CHECK (singleton = 1),
    console_id    TEXT   NOT NULL,
    audience      TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- The console's public signing keys (replaced as a whole by each push).
-- not_after_ms: a retired key; tokens it signed are refused after it.
CREATE TABLE console_keys (
    kid          TEXT   NOT NULL PRIMARY KEY,
    public_key   TEXT   NOT NULL,
    not_after_ms BIGINT
);

-- Append-only audit of the environment's API: every call that changes
-- something, and every refusal (401/403), whoever made it. Nothing updates
-- or deletes rows (no code path does).
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      BIGINT NOT NULL,
    -- token:<name>, console:<sub>, or anonymous.
    actor      TEXT   NOT NULL,
    -- The environment token's id or the console token's jti.
    credential TEXT,
    address    TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    target     TEXT   NOT NULL,
    status     BIGINT NOT NULL,
    outcome    TEXT   NOT NULL CHECK (outcome IN ('done', 'refused', 'failed')),
    detail     TEXT
);
CREATE INDEX audit_at ON audit (at_ms);
CREATE INDEX audit_actor ON audit (actor, at_ms);
