-- Timers (issue 10): one row per (app, timer) that a front-end has seen in a
-- committed routing table, holding the per-environment override, the next due
-- time and the run lease. Times are milliseconds since the unix epoch; the
-- lease expiry and "is it due" are compared on the database clock.
--
-- A front-end claims a due row (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the
-- write lock of `BEGIN IMMEDIATE` on SQLite), moves `next_due_at_ms` past
-- now (missed ticks run once) and takes the lease (`holder`,
-- `lease_expires_at_ms`), renewing it while the run lasts. A lease that
-- expires (its front-end died) makes the same due time claimable again.
CREATE TABLE timer_state (
    app                   TEXT   NOT NULL,
    timer                 TEXT   NOT NULL,
    -- NULL: the manifest's schedule.
    schedule_override     TEXT,
    disabled              BIGINT NOT NULL DEFAULT 0,
    -- "Run now" requested at (NULL: none pending).
    run_now_at_ms         BIGINT,
    -- NULL: not computed yet (new row, or the schedule or time zone changed).
    next_due_at_ms        BIGINT,
    -- "<effective schedule>|<time zone>" that next_due_at_ms was computed from.
    next_due_basis        TEXT,
    holder                TEXT,
    running_due_at_ms     BIGINT,
    running_started_at_ms BIGINT,
    lease_expires_at_ms   BIGINT,
    last_due_at_ms        BIGINT,
    last_started_at_ms    BIGINT,
    last_duration_ms      BIGINT,
    last_status           BIGINT,
    last_outcome          TEXT,
    last_error            TEXT,
    last_frontend         TEXT,
    PRIMARY KEY (app, timer)
);

CREATE INDEX timer_state_next_due ON timer_state (next_due_at_ms);
