-- Console catalog (the infrastructure console, `runway console serve`), SQLite dialect.
-- Timestamps are milliseconds since the unix epoch (BIGINT). Keys that cross
-- the API are UUIDs (TEXT, lowercase hyphenated); booleans are BIGINT 0/1.
-- The PostgreSQL dialect (migrations/postgres/console) has the same tables.

-- The console's single identity row: its UUID names the credentials it mints
-- on environments (`console:<id>`).
CREATE TABLE console (
    singleton     BIGINT NOT NULL PRIMARY KEY CHECK (singleton = 1),
    id            TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Who acts on the console. Issue 8: the console's admin and service accounts;
-- issue 9 adds IT users (kind 'user', with their own table keyed by this id),
-- roles and teams granted to principals, and the audit log (actor = principal).
CREATE TABLE principals (
    id            TEXT   NOT NULL PRIMARY KEY,
    kind          TEXT   NOT NULL CHECK (kind IN ('admin', 'service_account')),
    name          TEXT   NOT NULL,
    description   TEXT   NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT   REFERENCES principals (id),
    disabled_at_ms BIGINT
);
CREATE UNIQUE INDEX principals_active_name ON principals (name) WHERE disabled_at_ms IS NULL;

-- Bearer tokens of principals: only the SHA-256 of the secret is kept.
CREATE TABLE console_tokens (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    principal_id    TEXT   NOT NULL REFERENCES principals (id),
    name            TEXT   NOT NULL,
    hash            TEXT   NOT NULL UNIQUE,
    created_at_ms   BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms   BIGINT
);
CREATE INDEX console_tokens_principal ON console_tokens (principal_id);

CREATE TABLE pipelines (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    description   TEXT   NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT   REFERENCES principals (id)
);

-- Registered environments. Removal is a mark (plans keep naming their
-- environments); a removed environment frees its name and its place.
CREATE TABLE environments (
    id                TEXT   NOT NULL PRIMARY KEY,
    name              TEXT   NOT NULL,
    address           TEXT   NOT NULL,
    pipeline_id       TEXT   REFERENCES pipelines (id),
    position          BIGINT,
    allow_insecure    BIGINT NOT NULL DEFAULT 0 CHECK (allow_insecure IN (0, 1)),
    -- Per-environment setting: plans to this environment stop after prepare.
    two_step          BIGINT NOT NULL DEFAULT 0 CHECK (two_step IN (0, 1)),
    -- The `console`-scope token minted on the environment, sealed with the
    -- console key (XChaCha20-Poly1305, bound to the environment id), the id
    -- of that key, and the token's name on the environment.
    credential_sealed TEXT   NOT NULL,
    credential_key_id TEXT   NOT NULL,
    credential_name   TEXT   NOT NULL,
    created_at_ms     BIGINT NOT NULL,
    created_by        TEXT   REFERENCES principals (id),
    removed_at_ms     BIGINT,
    CHECK ((pipeline_id IS NULL) = (position IS NULL))
);
CREATE UNIQUE INDEX environments_active_name ON environments (name) WHERE removed_at_ms IS NULL;
CREATE UNIQUE INDEX environments_active_position ON environments (pipeline_id, position)
    WHERE removed_at_ms IS NULL AND pipeline_id IS NOT NULL;

-- The last health poll of each environment (one row, replaced by each poll).
CREATE TABLE environment_health (
    environment_id  TEXT   NOT NULL PRIMARY KEY REFERENCES environments (id),
    checked_at_ms   BIGINT NOT NULL,
    reachable       BIGINT NOT NULL CHECK (reachable IN (0, 1)),
    error           TEXT,
    runway_version  TEXT,
    environment_name TEXT,
    generation      BIGINT,
    last_seen_at_ms BIGINT
);

-- Front-ends of each environment at its last successful poll.
CREATE TABLE environment_frontends (
    environment_id TEXT   NOT NULL REFERENCES environments (id),
    name           TEXT   NOT NULL,
    address        TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    generation     BIGINT NOT NULL,
    enabled        BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    PRIMARY KEY (environment_id, name)
);

-- Applications known to the console (from polls or plans).
CREATE TABLE applications (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    description   TEXT,
    created_at_ms BIGINT NOT NULL
);

-- Versions: a version key identifies exactly one package digest, and an
-- (application, version) pair exactly one key. Tagging records a version;
-- it never changes bytes.
CREATE TABLE app_versions (
    id                  TEXT   NOT NULL PRIMARY KEY,
    application_id      TEXT   NOT NULL REFERENCES applications (id),
    version             TEXT   NOT NULL,
    digest              TEXT   NOT NULL,
    description         TEXT,
    changelog           TEXT   NOT NULL DEFAULT '',
    created_at_ms       BIGINT NOT NULL,
    -- Who tagged it; NULL when recorded from a poll (see the environment).
    created_by          TEXT   REFERENCES principals (id),
    -- The environment it was first seen in.
    first_environment_id TEXT  REFERENCES environments (id),
    UNIQUE (application_id, version),
    UNIQUE (application_id, digest)
);

-- What each environment runs, per application, at its last successful poll.
CREATE TABLE running_versions (
    environment_id TEXT   NOT NULL REFERENCES environments (id),
    application_id TEXT   NOT NULL REFERENCES applications (id),
    -- NULL when nothing runs, or when the environment runs bytes whose
    -- digest is not the console's version of that number (`version`/`digest`
    -- say what it runs; the matrix marks it).
    version_id     TEXT   REFERENCES app_versions (id),
    version        TEXT,
    digest         TEXT,
    status         TEXT   NOT NULL CHECK (status IN ('running', 'failed', 'stopped')),
    deployed_at_ms BIGINT,
    observed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (environment_id, application_id)
);

-- Deployment plans (issue 8 part 6; the LifeTime v2 "deployments").
CREATE TABLE deployment_plans (
    id                    TEXT   NOT NULL PRIMARY KEY,
    source_environment_id TEXT   NOT NULL REFERENCES environments (id),
    target_environment_id TEXT   NOT NULL REFERENCES environments (id),
    notes                 TEXT   NOT NULL DEFAULT '',
    two_step              BIGINT NOT NULL DEFAULT 0 CHECK (two_step IN (0, 1)),
    -- Deploy backwards or skip a stage of the pipeline (logged when used).
    allow_out_of_order    BIGINT NOT NULL DEFAULT 0 CHECK (allow_out_of_order IN (0, 1)),
    status                TEXT   NOT NULL CHECK (status IN (
        'saved', 'running', 'needs_user_intervention', 'finished_successful',
        'finished_with_warnings', 'finished_with_errors', 'aborting', 'aborted')),
    -- The target environment's deployment id while prepared / running.
    target_deployment_id  BIGINT,
    created_at_ms         BIGINT NOT NULL,
    created_by            TEXT   REFERENCES principals (id),
    started_at_ms         BIGINT,
    finished_at_ms        BIGINT,
    updated_at_ms         BIGINT NOT NULL
);
-- One plan at a time per target environment.
CREATE UNIQUE INDEX deployment_plans_one_active ON deployment_plans (target_environment_id)
    WHERE status IN ('running', 'needs_user_intervention', 'aborting');
CREATE INDEX deployment_plans_created ON deployment_plans (created_at_ms);

CREATE TABLE plan_operations (
    plan_id        TEXT   NOT NULL REFERENCES deployment_plans (id) ON DELETE CASCADE,
    position       BIGINT NOT NULL,
    kind           TEXT   NOT NULL CHECK (kind IN ('deploy', 'undeploy')),
    application_id TEXT   NOT NULL REFERENCES applications (id),
    version_id     TEXT   REFERENCES app_versions (id),
    rollback       BIGINT NOT NULL DEFAULT 0 CHECK (rollback IN (0, 1)),
    PRIMARY KEY (plan_id, position),
    UNIQUE (plan_id, application_id),
    CHECK ((kind = 'deploy') = (version_id IS NOT NULL))
);

-- Property values a plan sets in its target, sealed with the console key
-- (bound to plan, app and key); NULL unsets.
CREATE TABLE plan_properties (
    plan_id        TEXT   NOT NULL REFERENCES deployment_plans (id) ON DELETE CASCADE,
    application_id TEXT   NOT NULL REFERENCES applications (id),
    key            TEXT   NOT NULL,
    value_sealed   TEXT,
    key_id         TEXT,
    PRIMARY KEY (plan_id, application_id, key)
);

CREATE TABLE plan_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id    TEXT   NOT NULL REFERENCES deployment_plans (id) ON DELETE CASCADE,
    instant_ms BIGINT NOT NULL,
    kind       TEXT   NOT NULL CHECK (kind IN ('info', 'warning', 'error')),
    message    TEXT   NOT NULL
);
CREATE INDEX plan_log_plan ON plan_log (plan_id, id);
