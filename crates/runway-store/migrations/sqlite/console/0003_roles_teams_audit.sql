-- Console catalog, issue 9 stage 2: custom roles, teams, service-account roles
-- and token rotation, the audit log
-- (SQLite dialect; migrations/postgres/console/0003_roles_teams_audit.sql is the same).
--
-- The built-in roles (Administrator, Developer, Tester, Operations) are not
-- stored: the console synthesizes them from its code (runway-console
-- access::built_in_roles), so they can be neither edited nor deleted, and
-- no custom role may take their names (the console checks, any case).

-- Custom roles. `name_lower` keeps names unique whatever their case.
CREATE TABLE roles (
    name_lower            TEXT   NOT NULL PRIMARY KEY,
    name                  TEXT   NOT NULL,
    manage_infrastructure BIGINT NOT NULL DEFAULT 0 CHECK (manage_infrastructure IN (0, 1)),
    manage_users          BIGINT NOT NULL DEFAULT 0 CHECK (manage_users IN (0, 1)),
    created_at_ms         BIGINT NOT NULL,
    created_by            TEXT   REFERENCES principals (id)
);

-- A custom role's levels: `scope` is an environment's name, `@dev`,
-- `@test`, `@prod` or `*`; `level` no-access, monitor,
-- change-and-deploy or full-control.
CREATE TABLE role_levels (
    role_lower TEXT NOT NULL REFERENCES roles (name_lower) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    level      TEXT NOT NULL,
    PRIMARY KEY (role_lower, scope)
);

-- Teams: a set of apps (by name: an app need not run anywhere yet) and
-- members, each with a role that applies to the team's apps only.
CREATE TABLE teams (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT   REFERENCES principals (id)
);

CREATE TABLE team_apps (
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    app     TEXT NOT NULL,
    PRIMARY KEY (team_id, app)
);

-- A member is a principal (a user or a service account); `role` is a
-- built-in role's or a custom role's name.
CREATE TABLE team_members (
    team_id      TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id),
    role         TEXT NOT NULL,
    PRIMARY KEY (team_id, principal_id)
);
CREATE INDEX team_members_principal ON team_members (principal_id);

-- Service accounts are bound to a role (and, as members, to teams). The
-- accounts made before roles existed could do everything: they keep that,
-- as the Administrator role, until an administrator gives them another
-- (`runway service-account role`).
CREATE TABLE service_account_roles (
    principal_id TEXT NOT NULL PRIMARY KEY REFERENCES principals (id),
    role         TEXT NOT NULL
);
INSERT INTO service_account_roles (principal_id, role)
    SELECT id, 'Administrator' FROM principals WHERE kind = 'service_account';

-- Rotation: the replaced token keeps working until this time (its grace
-- period), then is refused; NULL = no end.
ALTER TABLE console_tokens ADD COLUMN expires_at_ms BIGINT;

-- The audit log: append-only (no row is ever changed; rows older than the
-- retention are deleted). `principal_*` name who acted (`-` when the
-- request carried no valid credential), `credential` which session or
-- token (a prefix of its id, never a secret), `address` the client's.
-- `outcome` is done or refused; `reason` says why a refusal happened.
-- `before_json`/`after_json` hold a configuration change, secret
-- values left out.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          BIGINT NOT NULL,
    principal_id   TEXT,
    principal_kind TEXT   NOT NULL,
    principal_name TEXT   NOT NULL,
    credential     TEXT   NOT NULL DEFAULT '',
    address        TEXT   NOT NULL,
    action         TEXT   NOT NULL,
    environment    TEXT,
    app            TEXT,
    target         TEXT   NOT NULL DEFAULT '',
    outcome        TEXT   NOT NULL CHECK (outcome IN ('done', 'refused')),
    status         BIGINT NOT NULL,
    reason         TEXT   NOT NULL DEFAULT '',
    before_json    TEXT,
    after_json     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_principal ON audit_log (principal_name, at_ms);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: its rows cannot be changed');
END;
