-- Secret property values are encrypted at rest: `key_id` names the secrets
-- key that sealed `value` (hex of nonce and ciphertext); NULL = plaintext.
ALTER TABLE properties ADD COLUMN key_id TEXT;

-- Once a property has been declared secret by any version of an app, its
-- value stays secret (masked, encrypted) until an admin un-marks it
-- (`secret` = 0 records the un-marking, so it is not re-marked from old
-- versions' manifests).
CREATE TABLE secret_properties (
    app           TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    secret        BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app, key)
);
