-- Email (issue 10, stage 3): the outbox apps write through
-- runway:email/outbox, and the environment's SMTP settings.
--
-- One row per email. A front-end that sends email claims due rows like jobs
-- (`FOR UPDATE SKIP LOCKED` on PostgreSQL, the write lock of
-- `BEGIN IMMEDIATE` on SQLite): `state = 'sending'`, a fresh
-- `claim_token` and a lease, renewed while the SMTP exchange lasts. Only the
-- holder of the token records the outcome: `sent` with the server's answer
-- as soon as the server accepted, `queued` again with a later `send_at_ms`
-- after a temporary failure, `failed` after a permanent one or the last
-- attempt. Address lists are one address a line. States are
-- runway_api::EmailState spellings. Times are ms since the epoch, compared
-- on the database clock.
CREATE TABLE emails (
    id                  TEXT   PRIMARY KEY,
    app                 TEXT   NOT NULL,
    -- The Message-ID header, fixed when queued: a resend after a crash
    -- between the server's acceptance and its recording carries the same one.
    message_id          TEXT   NOT NULL,
    to_addrs            TEXT   NOT NULL,
    cc_addrs            TEXT   NOT NULL,
    bcc_addrs           TEXT   NOT NULL,
    reply_to            TEXT,
    subject             TEXT   NOT NULL,
    text_body           TEXT,
    html_body           TEXT,
    state               TEXT   NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    max_attempts        BIGINT NOT NULL,
    created_at_ms       BIGINT NOT NULL,
    send_at_ms          BIGINT NOT NULL,
    holder              TEXT,
    claim_token         TEXT,
    lease_expires_at_ms BIGINT,
    finished_at_ms      BIGINT,
    server_answer       TEXT,
    last_error          TEXT,
    last_frontend       TEXT,
    resent_from         TEXT
);

CREATE INDEX emails_due ON emails (state, send_at_ms);
CREATE INDEX emails_app ON emails (app, created_at_ms);

-- The environment's SMTP settings: one row. The password is sealed with the
-- environment's secrets key (XChaCha20-Poly1305, like secret property
-- values; `password_key_id` names the key) and never returned by the API.
CREATE TABLE email_settings (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    host            TEXT   NOT NULL,
    port            BIGINT NOT NULL,
    security        TEXT   NOT NULL,
    from_addr       TEXT   NOT NULL,
    username        TEXT,
    password_sealed TEXT,
    password_key_id TEXT,
    updated_at_ms   BIGINT NOT NULL
);
