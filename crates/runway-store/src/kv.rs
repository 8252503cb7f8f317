//! Key-value data of apps (platform catalog), scoped by (app, bucket): an app
//! can only ever name keys inside its own scope.
//!
//! Values are opaque bytes. Counters ([`Store::kv_increment`]) are stored as the
//! decimal ASCII form of a 64-bit integer. Key-value data survives deletion of
//! the app's last version.

use sqlx::Row;

use crate::error::{Context, Result, StoreError};
use crate::{Store, now_ms};

/// Upper bound for one page of [`Store::kv_keys`].
pub(crate) const MAX_KEYS_PAGE: i64 = 10_000;

impl Store {
    /// The value of `key`, if set.
    pub async fn kv_get(&self, app: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT value FROM kv_entries WHERE app = $1 AND bucket = $2 AND key = $3")
                .bind(app)
                .bind(bucket)
                .bind(key)
                .fetch_optional(&self.platform().pool)
                .await
                .context(|| kv_what("read", app, bucket, key))?;
        row.map(|r| r.try_get::<Vec<u8>, _>("value"))
            .transpose()
            .context(|| kv_what("decode", app, bucket, key))
    }

    /// Sets `key` to `value` (insert or replace).
    pub async fn kv_set(&self, app: &str, bucket: &str, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO kv_entries (app, bucket, key, value, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, bucket, key) DO UPDATE \
             SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(app)
        .bind(bucket)
        .bind(key)
        .bind(value.to_vec())
        .bind(now_ms())
        .execute(&self.platform().pool)
        .await
        .context(|| kv_what("write", app, bucket, key))?;
        Ok(())
    }

    /// Removes `key` (no error if it was not set).
    pub async fn kv_delete(&self, app: &str, bucket: &str, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM kv_entries WHERE app = $1 AND bucket = $2 AND key = $3")
            .bind(app)
            .bind(bucket)
            .bind(key)
            .execute(&self.platform().pool)
            .await
            .context(|| kv_what("delete", app, bucket, key))?;
        Ok(())
    }

    /// Whether `key` is set.
    pub async fn kv_exists(&self, app: &str, bucket: &str, key: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS present FROM kv_entries WHERE app = $1 AND bucket = $2 AND key = $3",
        )
        .bind(app)
        .bind(bucket)
        .bind(key)
        .fetch_optional(&self.platform().pool)
        .await
        .context(|| kv_what("look up", app, bucket, key))?;
        Ok(row.is_some())
    }

    /// Keys of the bucket greater than `cursor`, in byte order, at most `limit`
    /// (clamped to 1..=10000). The returned cursor is the last key of the page
    /// when more keys remain, `None` at the end.
    pub async fn kv_keys(
        &self,
        app: &str,
        bucket: &str,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<String>, Option<String>)> {
        let limit = limit.clamp(1, MAX_KEYS_PAGE);
        let pool = &self.platform().pool;
        let rows = match cursor {
            Some(cursor) => {
                sqlx::query(
                    "SELECT key FROM kv_entries WHERE app = $1 AND bucket = $2 AND key > $3 \
                     ORDER BY key LIMIT $4",
                )
                .bind(app)
                .bind(bucket)
                .bind(cursor)
                .bind(limit + 1)
                .fetch_all(pool)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT key FROM kv_entries WHERE app = $1 AND bucket = $2 \
                     ORDER BY key LIMIT $3",
                )
                .bind(app)
                .bind(bucket)
                .bind(limit + 1)
                .fetch_all(pool)
                .await
            }
        }
        .context(|| format!("failed to list keys of app {app}, bucket {bucket:?}"))?;
        let mut keys = rows
            .iter()
            .map(|r| r.try_get::<String, _>("key"))
            .collect::<sqlx::Result<Vec<_>>>()
            .context(|| format!("failed to decode keys of app {app}, bucket {bucket:?}"))?;
        let more = keys.len() as i64 > limit;
        keys.truncate(limit as usize);
        let next = if more { keys.last().cloned() } else { None };
        Ok((keys, next))
    }

    /// Atomically adds `delta` to the integer stored at `key` (a missing key
    /// counts as 0) and returns the new value. Fails with
    /// [`StoreError::NotAnInteger`] if the existing value is not a decimal
    /// 64-bit integer, and [`StoreError::Overflow`] if the sum does not fit;
    /// in both cases nothing changes.
    pub async fn kv_increment(
        &self,
        app: &str,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64> {
        let what = || kv_what("increment", app, bucket, key);
        let now = now_ms();
        let mut tx = self
            .platform()
            .begin_write(&format!(
                "increment key {key:?} of app {app}, bucket {bucket:?}"
            ))
            .await?;
        // Writing first locks the row (PostgreSQL) / holds the write lock
        // (SQLite) before the value is read, so concurrent increments serialize.
        let current: Vec<u8> = sqlx::query(
            "INSERT INTO kv_entries (app, bucket, key, value, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, bucket, key) DO UPDATE \
             SET updated_at_ms = excluded.updated_at_ms RETURNING value",
        )
        .bind(app)
        .bind(bucket)
        .bind(key)
        .bind(b"0".to_vec())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("value"))
        .context(what)?;
        let Some(current) = std::str::from_utf8(&current)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        else {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotAnInteger(format!(
                "cannot increment key {key:?} of app {app}, bucket {bucket:?}: \
                 its value is not a decimal 64-bit integer"
            )));
        };
        let Some(next) = current.checked_add(delta) else {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Overflow(format!(
                "cannot increment key {key:?} of app {app}, bucket {bucket:?}: \
                 {current} + {delta} overflows a 64-bit integer"
            )));
        };
        sqlx::query("UPDATE kv_entries SET value = $1 WHERE app = $2 AND bucket = $3 AND key = $4")
            .bind(next.to_string().into_bytes())
            .bind(app)
            .bind(bucket)
            .bind(key)
            .execute(&mut *tx)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(next)
    }
}

fn kv_what(action: &str, app: &str, bucket: &str, key: &str) -> String {
    format!("failed to {action} key {key:?} of app {app}, bucket {bucket:?}")
}
