//! Login sessions (session catalog). Only a hash of the session id is stored.

use sqlx::Row;

use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::{Store, now_ms};

/// A session that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub subject: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl Store {
    /// Records a new session. A duplicate id hash is a [`StoreError::Conflict`].
    pub async fn create_session(
        &self,
        id_hash: &str,
        subject: &str,
        expires_at_ms: i64,
    ) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO sessions (id_hash, subject, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(subject)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&self.session_catalog().pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "cannot create a session for {subject}: the session id is already in use"
            ))),
            Err(e) => Err(e).context(|| format!("failed to create a session for {subject}")),
        }
    }

    /// The session with this id hash, unless it does not exist or has expired.
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT id_hash, subject, created_at_ms, expires_at_ms FROM sessions \
             WHERE id_hash = $1 AND expires_at_ms > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.session_catalog().pool)
        .await
        .context(|| "failed to look up session".to_string())?;
        row.map(|r| {
            Ok(SessionRecord {
                id_hash: r.try_get("id_hash")?,
                subject: r.try_get("subject")?,
                created_at_ms: r.try_get("created_at_ms")?,
                expires_at_ms: r.try_get("expires_at_ms")?,
            })
        })
        .transpose()
        .context(|| "failed to decode session".to_string())
    }

    /// Ends a session (no error if it does not exist).
    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.session_catalog().pool)
            .await
            .context(|| "failed to delete session".to_string())?;
        Ok(())
    }

    /// Deletes expired sessions; returns how many. Also run by
    /// [`Store::spawn_retention`].
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
            .bind(now_ms())
            .execute(&self.session_catalog().pool)
            .await
            .context(|| "failed to purge expired sessions".to_string())?;
        Ok(r.rows_affected())
    }
}
