-- Console catalog, issue 9 part 6: the console's Ed25519 signing keys
-- (postgres dialect; the other dialect's 0004_signing_keys.sql is the same).
--
-- The console signs the tokens it issues for environments with its current
-- key (retired_at_ms IS NULL, exactly one). Rotation retires it: a retired
-- key is still published to environments until not_after_ms (its last token
-- has expired), then deleted. The private key (PKCS#8, hex) is sealed with
-- the console key as environment credentials are (XChaCha20-Poly1305, bound
-- to the kid); private_key_id names the sealing key.
CREATE TABLE signing_keys (
    kid            TEXT   NOT NULL PRIMARY KEY,
    -- Ed25519 public key, 32 bytes, base64url without padding.
    public_key     TEXT   NOT NULL,
    private_sealed TEXT   NOT NULL,
    private_key_id TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    retired_at_ms  BIGINT,
    not_after_ms   BIGINT,
    CHECK ((retired_at_ms IS NULL) = (not_after_ms IS NULL))
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((1)) WHERE retired_at_ms IS NULL;
