-- Platform catalog, PostgreSQL dialect (schema `platform`).
-- Timestamps are milliseconds since the unix epoch (BIGINT). Surrogate ids are
-- identity columns (never reused, like SQLite's AUTOINCREMENT rowids). Keys
-- listed in order use COLLATE "C" (byte order, as SQLite compares), so
-- ordering and cursors behave the same on both backends.

CREATE TABLE settings (
    key           TEXT    NOT NULL PRIMARY KEY,
    value         TEXT    NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);

-- The environment's single state row: the committed routing-table generation.
CREATE TABLE environment (
    id         BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO environment (id, generation) VALUES (1, 0);

CREATE TABLE apps (
    name            TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    created_at_ms   BIGINT NOT NULL,
    running_version TEXT,
    running_digest  TEXT,
    deployed_at_ms  BIGINT
);

CREATE TABLE versions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app              TEXT   NOT NULL REFERENCES apps (name),
    version          TEXT   NOT NULL,
    digest           TEXT   NOT NULL,
    component_digest TEXT   NOT NULL,
    description      TEXT,
    manifest_toml    TEXT   NOT NULL,
    size_bytes       BIGINT NOT NULL,
    published_at_ms  BIGINT NOT NULL,
    UNIQUE (app, version)
);

CREATE TABLE artifacts (
    component_digest TEXT   NOT NULL,
    engine           TEXT   NOT NULL,
    artifact_digest  TEXT   NOT NULL,
    size_bytes       BIGINT NOT NULL,
    compile_ms       BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    PRIMARY KEY (component_digest, engine)
);

-- Deployment history outlives apps and versions: no foreign keys.
CREATE TABLE deployments (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app            TEXT   NOT NULL,
    version        TEXT   NOT NULL,
    kind           TEXT   NOT NULL CHECK (kind IN ('deploy', 'config', 'undeploy')),
    status         TEXT   NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error          TEXT,
    generation     BIGINT,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX deployments_app_id ON deployments (app, id);
CREATE INDEX deployments_status ON deployments (status);

-- Properties and key-value data are keyed by app name but deliberately not tied
-- to the apps table: deleting an app's last version keeps them.
CREATE TABLE properties (
    app           TEXT   NOT NULL,
    key           TEXT   COLLATE "C" NOT NULL,
    value         TEXT   NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app, key)
);

CREATE TABLE kv_entries (
    app           TEXT   NOT NULL,
    bucket        TEXT   NOT NULL,
    key           TEXT   COLLATE "C" NOT NULL,
    value         BYTEA  NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app, bucket, key)
);

CREATE TABLE tokens (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT   NOT NULL,
    scope           TEXT   NOT NULL,
    hash            TEXT   NOT NULL UNIQUE,
    created_at_ms   BIGINT NOT NULL,
    last_used_at_ms BIGINT,
    revoked_at_ms   BIGINT
);
-- A name is unique among tokens that are not revoked.
CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at_ms IS NULL;
