-- Log rows dropped, per cause (queue_full, output_rate_limit, rejected,
-- database_unavailable, size_cap), added up by every process that writes to
-- this log catalog: `runway env` shows the environment's totals.
CREATE TABLE log_dropped (
    cause TEXT   NOT NULL PRIMARY KEY,
    count BIGINT NOT NULL
);
