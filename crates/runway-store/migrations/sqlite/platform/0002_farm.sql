-- Server farm: the registered front-ends and each deployment's per-front-end
-- progress. In-process front-ends (`runway up`) are not registered here.
CREATE TABLE frontends (
    name              TEXT NOT NULL PRIMARY KEY,
    -- Random identity kept in the front-end's data dir: a second process
    -- claiming the same name is a duplicate, a restart is not.
    node_id           TEXT   NOT NULL,
    address           TEXT   NOT NULL,
    serves_apps       BIGINT NOT NULL,
    runs_timers       BIGINT NOT NULL,
    sends_email       BIGINT NOT NULL,
    engine            TEXT   NOT NULL,
    runway_version    TEXT   NOT NULL,
    -- Random per registration; the front-end's key is derived from it and the
    -- controller's fleet key, so the key itself is never stored.
    key_nonce         TEXT   NOT NULL,
    enabled           BIGINT NOT NULL,
    generation        BIGINT NOT NULL,
    ready             BIGINT NOT NULL,
    registered_at_ms  BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL
);

-- JSON list of per-front-end progress (stage, commit, errors).
ALTER TABLE deployments ADD COLUMN frontends TEXT;
