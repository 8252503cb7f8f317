-- Multi-app deployments, prepared deployments, and typed per-front-end
-- progress (instead of a JSON document in `deployments.frontends`).

-- Every app a deployment switches, in request order; `position` 0 is the one
-- `deployments.app/version/kind` describe.
CREATE TABLE deployment_operations (
    deployment_id BIGINT NOT NULL,
    position      BIGINT NOT NULL,
    app           TEXT   NOT NULL,
    kind          TEXT   NOT NULL CHECK (kind IN ('deploy', 'config', 'undeploy')),
    -- Deploy: the version switched to; undeploy/config: the one running before.
    version       TEXT,
    -- Package digest of `version` (NULL for undeploy).
    digest        TEXT,
    PRIMARY KEY (deployment_id, position)
);

INSERT INTO deployment_operations (deployment_id, position, app, kind, version, digest)
SELECT d.id, 0, d.app, d.kind, d.version,
       CASE WHEN d.kind = 'undeploy' THEN NULL
            ELSE (SELECT v.digest FROM versions v WHERE v.app = d.app AND v.version = d.version)
       END
FROM deployments d;

-- Each registered front-end's part in a deployment, in the order reported.
CREATE TABLE deployment_frontends (
    deployment_id BIGINT NOT NULL,
    position      BIGINT NOT NULL,
    frontend      TEXT   NOT NULL,
    state         TEXT   NOT NULL CHECK (state IN
                  ('staged', 'committed', 'failed', 'disabled', 'behind', 'skipped', 'aborted')),
    fetched_bytes BIGINT NOT NULL,
    elapsed_ms    BIGINT NOT NULL,
    error         TEXT,
    PRIMARY KEY (deployment_id, position)
);

INSERT INTO deployment_frontends
    (deployment_id, position, frontend, state, fetched_bytes, elapsed_ms, error)
SELECT d.id, CAST(j.key AS BIGINT),
       json_extract(j.value, '$.frontend'), json_extract(j.value, '$.state'),
       json_extract(j.value, '$.fetched_bytes'), json_extract(j.value, '$.elapsed_ms'),
       json_extract(j.value, '$.error')
FROM deployments d, json_each(d.frontends) j
WHERE d.frontends IS NOT NULL;

-- SQLite cannot change a CHECK constraint: the table is rebuilt, without the
-- JSON column and with the new statuses and the expiry of prepared ones.
CREATE TABLE deployments_v7 (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    app            TEXT   NOT NULL,
    version        TEXT   NOT NULL,
    kind           TEXT   NOT NULL CHECK (kind IN ('deploy', 'config', 'undeploy')),
    status         TEXT   NOT NULL CHECK (status IN
                   ('running', 'prepared', 'succeeded', 'failed', 'aborted')),
    error          TEXT,
    generation     BIGINT,
    started_at_ms  BIGINT NOT NULL,
    finished_at_ms BIGINT,
    expires_at_ms  BIGINT
);
INSERT INTO deployments_v7
    (id, app, version, kind, status, error, generation, started_at_ms, finished_at_ms)
SELECT id, app, version, kind, status, error, generation, started_at_ms, finished_at_ms
FROM deployments;
DROP TABLE deployments;
ALTER TABLE deployments_v7 RENAME TO deployments;
CREATE INDEX deployments_app_id ON deployments (app, id);
CREATE INDEX deployments_status ON deployments (status);
CREATE INDEX deployment_operations_app ON deployment_operations (app, deployment_id);
