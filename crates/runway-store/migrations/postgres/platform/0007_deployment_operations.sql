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
SELECT d.id, j.n - 1,
       j.value ->> 'frontend', j.value ->> 'state',
       (j.value ->> 'fetched_bytes')::BIGINT, (j.value ->> 'elapsed_ms')::BIGINT,
       j.value ->> 'error'
FROM deployments d
CROSS JOIN LATERAL jsonb_array_elements(d.frontends::jsonb) WITH ORDINALITY AS j(value, n)
WHERE d.frontends IS NOT NULL;

ALTER TABLE deployments DROP COLUMN frontends;
ALTER TABLE deployments DROP CONSTRAINT deployments_status_check;
ALTER TABLE deployments ADD CONSTRAINT deployments_status_check
    CHECK (status IN ('running', 'prepared', 'succeeded', 'failed', 'aborted'));
ALTER TABLE deployments ADD COLUMN expires_at_ms BIGINT;
CREATE INDEX deployment_operations_app ON deployment_operations (app, deployment_id);
