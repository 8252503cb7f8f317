-- Background jobs (issue 10, stage 2), and the per-claim token of timer runs.
--
-- One row per job an app enqueued (runway:jobs/queue). A front-end claims
-- due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock of
-- `BEGIN IMMEDIATE` on SQLite), sets `state = 'running'`, a fresh
-- `claim_token` and a lease (the visibility timeout), renewing it while the
-- delivery lasts. Only the holder of the token records the outcome; a lease
-- that expires (its front-end died) makes the job claimable again.
-- States are runway_api::JobState spellings. Times are ms since the epoch,
-- compared on the database clock.
CREATE TABLE jobs (
    id                  TEXT   PRIMARY KEY,
    app                 TEXT   NOT NULL,
    path                TEXT   NOT NULL,
    payload             BLOB  NOT NULL,
    -- Unique per app: enqueueing the same key again returns the first job.
    idempotency_key     TEXT,
    state               TEXT   NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    max_attempts        BIGINT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    -- Next delivery not before (queued, retrying).
    run_at_ms           BIGINT NOT NULL,
    holder              TEXT,
    claim_token         TEXT,
    lease_expires_at_ms BIGINT,
    finished_at_ms      BIGINT,
    last_status         BIGINT,
    last_error          TEXT,
    last_frontend       TEXT,
    UNIQUE (app, idempotency_key)
);

CREATE INDEX jobs_due ON jobs (state, run_at_ms);
CREATE INDEX jobs_app ON jobs (app, created_at_ms);

-- A timer run is held by one claim, not by a front-end's name: a front-end
-- that lost its lease (a long catalog outage) and claimed the timer again
-- cannot record or renew the older run.
ALTER TABLE timer_state ADD COLUMN claim_token TEXT;
