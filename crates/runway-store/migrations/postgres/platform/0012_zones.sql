-- Platform catalog, issue 12 part 1: deployment zones, postgres dialect; the
-- other dialect's 0012_zones.sql differs only in collation.

-- The environment's deployment zones. `global` always exists (it cannot be
-- removed): front-ends and apps without a zone belong to it.
-- address: the zone's balancer or its single server (an http(s) URL), where
-- app-to-app calls from other zones go; NULL for `global` until set.
-- generation: the committed generation at which this zone's routing table
-- last changed; its front-ends are ready once they serve at least it.
CREATE TABLE zones (
    name           TEXT COLLATE "C"   NOT NULL PRIMARY KEY,
    address        TEXT,
    https_internal BIGINT NOT NULL,
    generation     BIGINT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

INSERT INTO zones (name, address, https_internal, generation, created_at_ms)
SELECT 'global', NULL, 0, generation, 0 FROM environment WHERE id = 1;

-- The zone of each front-end (a flag at its start).
ALTER TABLE frontends ADD COLUMN zone TEXT NOT NULL DEFAULT 'global';

-- The zone an app is deployed to; an app without a row is in `global`.
-- Written only by the transaction that records a deployment.
CREATE TABLE app_zones (
    app  TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES apps (name) ON DELETE CASCADE,
    zone TEXT COLLATE "C" NOT NULL REFERENCES zones (name)
);
