-- Console catalog, issue 9 stage 1: IT users, sessions and login throttling
-- (SQLite dialect; migrations/postgres/console/0002_identity.sql is the same).
--
-- `principals.kind` gains 'user'. SQLite cannot alter a CHECK, so the table
-- is rebuilt inside the migration's transaction: with foreign keys deferred,
-- dropping it leaves its children's references dangling until the same rows
-- are inserted into the new table, before the commit checks them.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE principals_copy AS SELECT * FROM principals;
DROP TABLE principals;
CREATE TABLE principals (
    id            TEXT   NOT NULL PRIMARY KEY,
    kind          TEXT   NOT NULL CHECK (kind IN ('admin', 'service_account', 'user')),
    name          TEXT   NOT NULL,
    description   TEXT   NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT   REFERENCES principals (id),
    disabled_at_ms BIGINT
);
INSERT INTO principals (id, kind, name, description, created_at_ms, created_by, disabled_at_ms)
    SELECT id, kind, name, description, created_at_ms, created_by, disabled_at_ms
    FROM principals_copy ORDER BY created_at_ms;
DROP TABLE principals_copy;
CREATE UNIQUE INDEX principals_active_name ON principals (name) WHERE disabled_at_ms IS NULL;

-- IT users: a principal of kind 'user' (its name is the username; disabled
-- = principals.disabled_at_ms) and what only users have.
CREATE TABLE users (
    principal_id           TEXT   NOT NULL PRIMARY KEY REFERENCES principals (id),
    display_name           TEXT   NOT NULL DEFAULT '',
    email                  TEXT   NOT NULL,
    -- The user's role (a built-in role name until custom roles exist).
    role                   TEXT   NOT NULL,
    -- PHC string of argon2id (parameters inside it).
    password_hash          TEXT   NOT NULL,
    password_changed_at_ms BIGINT NOT NULL,
    -- Set after too many failed logins in a row; an admin clears it.
    locked_at_ms           BIGINT
);

-- Login sessions: only the SHA-256 of the session secret is kept.
CREATE TABLE console_sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    hash            TEXT   NOT NULL UNIQUE,
    principal_id    TEXT   NOT NULL REFERENCES principals (id),
    address         TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    last_seen_at_ms BIGINT NOT NULL,
    -- Absolute expiry; idle expiry is last_seen_at_ms + the console's idle timeout.
    expires_at_ms   BIGINT NOT NULL,
    ended_at_ms     BIGINT,
    ended_reason    TEXT
);
CREATE INDEX console_sessions_principal ON console_sessions (principal_id);

-- Failed logins in a row, per username and per client address.
CREATE TABLE login_failures (
    scope              TEXT   NOT NULL CHECK (scope IN ('user', 'address')),
    key                TEXT   NOT NULL,
    failures           BIGINT NOT NULL,
    last_failure_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

