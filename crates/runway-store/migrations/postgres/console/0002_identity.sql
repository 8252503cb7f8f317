-- Console catalog, issue 9 stage 1: IT users, sessions and login throttling
-- (PostgreSQL dialect; migrations/sqlite/console/0002_identity.sql is the same).

ALTER TABLE principals DROP CONSTRAINT principals_kind_check;
ALTER TABLE principals ADD CONSTRAINT principals_kind_check
    CHECK (kind IN ('admin', 'service_account', 'user'));

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
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
