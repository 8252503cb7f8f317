-- The controller lease: the one row that says which controller is active.
-- `holder` is the active controller's random id ('' before the first one),
-- `address` where clients reach it, `term` grows by one every time another
-- controller takes the lease (fencing: a deployment records only while its
-- controller's term is current), `expires_at_ms` on the database clock.
CREATE TABLE controller_lease (
    id             BIGINT NOT NULL PRIMARY KEY,
    holder         TEXT   NOT NULL,
    address        TEXT   NOT NULL,
    term           BIGINT NOT NULL,
    acquired_at_ms BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL
);

INSERT INTO controller_lease (id, holder, address, term, acquired_at_ms, expires_at_ms)
VALUES (1, '', '', 0, 0, 0);
