//! The console an environment trusts (issue 9 part 6, environment side):
//! its key, the audience its tokens for this environment carry, and its
//! public signing keys, replaced as a whole by each push of the console.

use sqlx::Row;

use crate::error::{Context, Result};
use crate::{Store, now_ms};

/// One public key of the trusted console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKeyRecord {
    pub kid: String,
    /// Ed25519 public key, base64url without padding.
    pub public_key: String,
    /// A retired key: tokens it signed are refused after this instant.
    pub not_after_ms: Option<i64>,
}

/// The trusted console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTrustRecord {
    pub console_id: String,
    pub audience: String,
    pub updated_at_ms: i64,
    pub keys: Vec<TrustedKeyRecord>,
}

impl Store {
    /// The console this environment trusts, if one pushed its keys.
    pub async fn console_trust(&self) -> Result<Option<ConsoleTrustRecord>> {
        let what = || "failed to read the trusted console".to_string();
        let pool = &self.platform().pool;
        let Some(row) = sqlx::query(
            "SELECT console_id, audience, updated_at_ms FROM console_trust WHERE singleton = 1",
        )
        .fetch_optional(pool)
        .await
        .context(what)?
        else {
            return Ok(None);
        };
        let keys =
            sqlx::query("SELECT kid, public_key, not_after_ms FROM console_keys ORDER BY kid")
                .fetch_all(pool)
                .await
                .context(what)?
                .iter()
                .map(|r| {
                    Ok(TrustedKeyRecord {
                        kid: r.try_get("kid")?,
                        public_key: r.try_get("public_key")?,
                        not_after_ms: r.try_get("not_after_ms")?,
                    })
                })
                .collect::<sqlx::Result<Vec<_>>>()
                .context(what)?;
        Ok(Some(ConsoleTrustRecord {
            console_id: row.try_get("console_id").context(what)?,
            audience: row.try_get("audience").context(what)?,
            updated_at_ms: row.try_get("updated_at_ms").context(what)?,
            keys,
        }))
    }

    /// Replaces the trusted console and its keys, in one transaction.
    pub async fn set_console_trust(
        &self,
        console_id: &str,
        audience: &str,
        keys: &[TrustedKeyRecord],
    ) -> Result<ConsoleTrustRecord> {
        let what = || format!("failed to record the keys of console {console_id}");
        let now = now_ms();
        let mut tx = self
            .platform()
            .begin_write("record the trusted console")
            .await?;
        sqlx::query("DELETE FROM console_trust")
            .execute(&mut *tx)
            .await
            .context(what)?;
        sqlx::query(
            "INSERT INTO console_trust (singleton, console_id, audience, updated_at_ms) \
             VALUES (1, $1, $2, $3)",
        )
        .bind(console_id)
        .bind(audience)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        sqlx::query("DELETE FROM console_keys")
            .execute(&mut *tx)
            .await
            .context(what)?;
        for key in keys {
            sqlx::query(
                "INSERT INTO console_keys (kid, public_key, not_after_ms) VALUES ($1, $2, $3)",
            )
            .bind(&key.kid)
            .bind(&key.public_key)
            .bind(key.not_after_ms)
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        tx.commit().await.context(what)?;
        let mut keys = keys.to_vec();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Ok(ConsoleTrustRecord {
            console_id: console_id.to_string(),
            audience: audience.to_string(),
            updated_at_ms: now,
            keys,
        })
    }
}
