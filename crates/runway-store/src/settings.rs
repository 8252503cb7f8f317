//! Environment settings (platform catalog): a flat string → string map.

use sqlx::Row;

use crate::error::{Context, Result};
use crate::{Store, now_ms};

impl Store {
    /// The value of setting `key`, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.platform().pool)
            .await
            .context(|| format!("failed to read setting {key:?}"))?;
        row.map(|r| r.try_get::<String, _>("value"))
            .transpose()
            .context(|| format!("failed to decode setting {key:?}"))
    }

    /// Sets (inserts or replaces) setting `key`.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to write setting {key:?}"))?;
        Ok(())
    }

    /// Removes setting `key` (nothing if it is not set).
    pub async fn delete_setting(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(key)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to remove setting {key:?}"))?;
        Ok(())
    }
}
