-- Before/after of a configuration change on the environment's audit rows
-- (JSON; secret values never: a secret property is noted as set or not).
ALTER TABLE audit ADD COLUMN before_json TEXT;
ALTER TABLE audit ADD COLUMN after_json TEXT;
