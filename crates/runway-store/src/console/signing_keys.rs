//! The console's Ed25519 signing keys (issue 9 part 6): the current key that
//! signs the tokens the console issues for environments, and retired keys,
//! still published until the last token they signed has expired.
//!
//! The store keeps bytes, never does cryptography beyond sealing: the console
//! generates a key pair and hands the private key (PKCS#8, hex) here, where
//! it is sealed with the console key, bound to its kid.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::ConsoleStore;
use crate::error::{Context, Result, StoreError};
use crate::now_ms;

/// A signing key's public part (never its private key: see
/// [`ConsoleStore::current_signing_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// Ed25519 public key, base64url without padding.
    pub public_key: String,
    pub created_at_ms: i64,
    /// Set once rotated out.
    pub retired_at_ms: Option<i64>,
    /// For a retired key: when the last token it signed expires.
    pub not_after_ms: Option<i64>,
}

/// The current key with its private key opened (PKCS#8 DER, hex).
pub struct CurrentSigningKey {
    pub record: SigningKeyRecord,
    pub private_pkcs8_hex: String,
}

impl std::fmt::Debug for CurrentSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentSigningKey")
            .field("record", &self.record)
            .field("private_pkcs8_hex", &"<redacted>")
            .finish()
    }
}

const COLUMNS: &str = "kid, public_key, created_at_ms, retired_at_ms, not_after_ms";

fn from_row(r: &AnyRow) -> sqlx::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: r.try_get("kid")?,
        public_key: r.try_get("public_key")?,
        created_at_ms: r.try_get("created_at_ms")?,
        retired_at_ms: r.try_get("retired_at_ms")?,
        not_after_ms: r.try_get("not_after_ms")?,
    })
}

/// The associated data a signing key's private part is sealed with.
fn signing_key_context(kid: &str) -> Vec<u8> {
    let mut context = b"runway console signing key\0".to_vec();
    context.extend_from_slice(kid.as_bytes());
    context
}

impl ConsoleStore {
    /// The keys environments must accept now: the current one and retired
    /// ones whose tokens may still be valid (`not_after_ms` in the future),
    /// oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM signing_keys \
             WHERE not_after_ms IS NULL OR not_after_ms > $1 ORDER BY created_at_ms, kid"
        ))
        .bind(now_ms())
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list the console's signing keys".to_string())?;
        rows.iter()
            .map(from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode a signing key".to_string())
    }

    /// The current signing key with its private key, if the console has one.
    pub async fn current_signing_key(&self) -> Result<Option<CurrentSigningKey>> {
        let what = || "failed to read the console's current signing key".to_string();
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, private_sealed FROM signing_keys WHERE retired_at_ms IS NULL"
        ))
        .fetch_optional(&self.catalog().pool)
        .await
        .context(what)?;
        let Some(row) = row else { return Ok(None) };
        let record = from_row(&row).context(what)?;
        let sealed: String = row.try_get("private_sealed").context(what)?;
        let key = self.key()?;
        let private_pkcs8_hex = key
            .open(&signing_key_context(&record.kid), &sealed)
            .ok_or_else(|| StoreError::SecretsKey {
                path: key.path().to_path_buf(),
                problem: format!(
                    "does not open the console's signing key {}: this is not the key this \
                     console sealed it with; restore the console's key from a backup (or rotate \
                     the signing key with `runway console rotate-key`)",
                    record.kid
                ),
            })?;
        Ok(Some(CurrentSigningKey {
            record,
            private_pkcs8_hex,
        }))
    }

    /// Makes a new key current, in one transaction: the current key (if any)
    /// is retired, accepted until `retired_not_after_ms`; retired keys past
    /// their `not_after_ms` are deleted.
    pub async fn rotate_signing_key(
        &self,
        kid: &str,
        public_key: &str,
        private_pkcs8_hex: &str,
        retired_not_after_ms: i64,
    ) -> Result<SigningKeyRecord> {
        let what = || format!("failed to add signing key {kid}");
        let key = self.key()?;
        let sealed = key.seal(&signing_key_context(kid), private_pkcs8_hex);
        let now = now_ms();
        let mut tx = self.catalog().begin_write("rotate the signing key").await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at_ms = $1, not_after_ms = $2 \
             WHERE retired_at_ms IS NULL",
        )
        .bind(now)
        .bind(retired_not_after_ms)
        .execute(&mut *tx)
        .await
        .context(what)?;
        sqlx::query(
            "DELETE FROM signing_keys WHERE not_after_ms IS NOT NULL AND not_after_ms <= $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        let row = sqlx::query(&format!(
            "INSERT INTO signing_keys \
             (kid, public_key, private_sealed, private_key_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .bind(kid)
        .bind(public_key)
        .bind(&sealed)
        .bind(key.id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .context(what)?;
        let record = from_row(&row).context(what)?;
        tx.commit().await.context(what)?;
        Ok(record)
    }
}
