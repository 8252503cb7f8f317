//! Key-value data of apps (platform catalog), scoped by (app, bucket): an app
//! can only ever name keys inside its own scope.
//!
//! Values are opaque bytes. Counters ([`Store::kv_increment`]) are stored as the
//! decimal ASCII form of a 64-bit integer. Key-value data survives deletion of
//! the app's last version.
//!
//! Input is checked before any SQL runs, identically for both backends: app,
//! bucket and key are text without NUL bytes (PostgreSQL TEXT refuses `\0`,
//! SQLite would store it), a key is at most [`MAX_KEY_BYTES`], a bucket name 1
//! to [`MAX_BUCKET_BYTES`]. Every write keeps the app's usage (`kv_usage`: keys,
//! bytes of keys and values) in the same transaction and refuses to take it past
//! the environment's [`KvQuota`]; writers of one app serialize on its usage row.

use sqlx::Row;

use crate::error::{Context, Result, StoreError};
use crate::{Store, now_ms};

/// Upper bound for one page of [`Store::kv_keys`].
pub(crate) const MAX_KEYS_PAGE: i64 = 10_000;
/// Longest key, in bytes (UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest bucket name, in bytes (UTF-8).
pub const MAX_BUCKET_BYTES: usize = 128;

/// The key-value quota of every app of an environment: at most `max_keys` keys
/// and `max_bytes` bytes of keys and values, over all of the app's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    pub max_bytes: u64,
    pub max_keys: u64,
}

impl KvQuota {
    /// 100 MiB, 100 000 keys.
    pub const DEFAULT: KvQuota = KvQuota {
        max_bytes: 100 << 20,
        max_keys: 100_000,
    };
}

impl Default for KvQuota {
    fn default() -> Self {
        KvQuota::DEFAULT
    }
}

/// An app's key-value usage: keys, and bytes of keys and values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    pub keys: u64,
    pub bytes: u64,
}

const QUOTA_BYTES_SETTING: &str = "kv_quota_bytes";
const QUOTA_KEYS_SETTING: &str = "kv_quota_keys";

/// At most this many characters of a bad input are shown in a message.
const SHOWN: usize = 40;

/// `text` quoted, cut to [`SHOWN`] characters.
pub(crate) fn shown(text: &str) -> String {
    if text.chars().count() <= SHOWN {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(SHOWN).collect();
        format!("{cut:?}… ({} bytes)", text.len())
    }
}

/// Refuses text with a NUL byte: `what` names the field in the message.
pub(crate) fn check_no_nul(what: &str, text: &str) -> Result<()> {
    match text.find('\0') {
        Some(at) => Err(StoreError::Invalid(format!(
            "{what} {} contains a NUL byte (\\0) at byte {at}; remove it (text here may not contain NUL)",
            shown(text)
        ))),
        None => Ok(()),
    }
}

fn check_app(app: &str) -> Result<()> {
    check_no_nul("app name", app)
}

fn check_bucket(app: &str, bucket: &str) -> Result<()> {
    check_app(app)?;
    if bucket.is_empty() || bucket.len() > MAX_BUCKET_BYTES {
        return Err(StoreError::Invalid(format!(
            "bucket name {} of app {app} is {} bytes long; use 1 to {MAX_BUCKET_BYTES} bytes",
            shown(bucket),
            bucket.len()
        )));
    }
    check_no_nul("bucket name", bucket)
}

fn check_key(app: &str, bucket: &str, key: &str) -> Result<()> {
    check_bucket(app, bucket)?;
    check_key_text("key", key)
}

fn check_key_text(what: &str, key: &str) -> Result<()> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::Invalid(format!(
            "{what} {} is longer than {MAX_KEY_BYTES} bytes; use a shorter key (hash long ones)",
            shown(key)
        )));
    }
    check_no_nul(what, key)
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Locks `app`'s usage row for the rest of `tx` (creating it) and returns it.
/// Every key-value writer of the app takes this lock first, so the reads that
/// follow in the transaction see no concurrent change of the app's data.
async fn lock_usage(tx: &mut Tx, app: &str) -> sqlx::Result<KvUsage> {
    let row = sqlx::query(
        "INSERT INTO kv_usage (app, key_count, byte_count) VALUES ($1, 0, 0) \
         ON CONFLICT (app) DO UPDATE SET key_count = kv_usage.key_count \
         RETURNING key_count, byte_count",
    )
    .bind(app)
    .fetch_one(&mut **tx)
    .await?;
    Ok(KvUsage {
        keys: row.try_get::<i64, _>("key_count")?.max(0) as u64,
        bytes: row.try_get::<i64, _>("byte_count")?.max(0) as u64,
    })
}

async fn store_usage(tx: &mut Tx, app: &str, usage: KvUsage) -> sqlx::Result<()> {
    sqlx::query("UPDATE kv_usage SET key_count = $1, byte_count = $2 WHERE app = $3")
        .bind(usage.keys as i64)
        .bind(usage.bytes as i64)
        .bind(app)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn read_quota(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
) -> sqlx::Result<KvQuota> {
    let rows = sqlx::query("SELECT key, value FROM settings WHERE key = $1 OR key = $2")
        .bind(QUOTA_BYTES_SETTING)
        .bind(QUOTA_KEYS_SETTING)
        .fetch_all(executor)
        .await?;
    let mut quota = KvQuota::DEFAULT;
    for row in rows {
        let key: String = row.try_get("key")?;
        let value: String = row.try_get("value")?;
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        if key == QUOTA_BYTES_SETTING {
            quota.max_bytes = value;
        } else {
            quota.max_keys = value;
        }
    }
    Ok(quota)
}

/// The stored value's length of `key`, if set (read under the usage lock).
async fn current_len(tx: &mut Tx, app: &str, bucket: &str, key: &str) -> sqlx::Result<Option<u64>> {
    let row = sqlx::query(
        "SELECT CAST(LENGTH(value) AS BIGINT) AS n FROM kv_entries \
         WHERE app = $1 AND bucket = $2 AND key = $3",
    )
    .bind(app)
    .bind(bucket)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| r.try_get::<i64, _>("n").map(|n| n.max(0) as u64))
        .transpose()
}

/// The usage after replacing `key`'s value (of `old` bytes, if set) with
/// `new` bytes, or the quota error. A write that does not grow the usage is
/// always allowed (the quota may have been lowered below it).
fn next_usage(
    app: &str,
    key: &str,
    usage: KvUsage,
    old: Option<u64>,
    new: u64,
    quota: KvQuota,
) -> Result<KvUsage> {
    let key_bytes = key.len() as u64;
    let (keys, bytes) = match old {
        Some(old) => (usage.keys, usage.bytes.saturating_sub(old) + new),
        None => (usage.keys + 1, usage.bytes + key_bytes + new),
    };
    if keys > usage.keys && keys > quota.max_keys {
        return Err(StoreError::QuotaExceeded(format!(
            "key-value quota exceeded: app {app} already has {} keys, the limit is {}; \
             delete keys or ask the operator to raise --kv-quota-keys",
            usage.keys, quota.max_keys
        )));
    }
    if bytes > usage.bytes && bytes > quota.max_bytes {
        return Err(StoreError::QuotaExceeded(format!(
            "key-value quota exceeded: writing key {} would take app {app} to {bytes} bytes, \
             the limit is {} bytes; delete data or ask the operator to raise --kv-quota-mib",
            shown(key),
            quota.max_bytes
        )));
    }
    Ok(KvUsage { keys, bytes })
}

impl Store {
    /// The value of `key`, if set.
    pub async fn kv_get(&self, app: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(app, bucket, key)?;
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

    /// Sets `key` to `value` (insert or replace). Fails with
    /// [`StoreError::QuotaExceeded`] (nothing written) if that would take the
    /// app past the environment's [`KvQuota`].
    pub async fn kv_set(&self, app: &str, bucket: &str, key: &str, value: &[u8]) -> Result<()> {
        check_key(app, bucket, key)?;
        let what = || kv_what("write", app, bucket, key);
        let mut tx = self
            .platform()
            .begin_write(&format!("write key {} of app {app}", shown(key)))
            .await?;
        let usage = lock_usage(&mut tx, app).await.context(what)?;
        let old = current_len(&mut tx, app, bucket, key).await.context(what)?;
        let quota = read_quota(&mut *tx).await.context(what)?;
        let next = match next_usage(app, key, usage, old, value.len() as u64, quota) {
            Ok(next) => next,
            Err(e) => {
                tx.rollback().await.context(what)?;
                return Err(e);
            }
        };
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
        .execute(&mut *tx)
        .await
        .context(what)?;
        store_usage(&mut tx, app, next).await.context(what)?;
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Removes `key` (no error if it was not set).
    pub async fn kv_delete(&self, app: &str, bucket: &str, key: &str) -> Result<()> {
        check_key(app, bucket, key)?;
        let what = || kv_what("delete", app, bucket, key);
        let mut tx = self
            .platform()
            .begin_write(&format!("delete key {} of app {app}", shown(key)))
            .await?;
        let usage = lock_usage(&mut tx, app).await.context(what)?;
        let row = sqlx::query(
            "DELETE FROM kv_entries WHERE app = $1 AND bucket = $2 AND key = $3 \
             RETURNING CAST(LENGTH(value) AS BIGINT) AS n",
        )
        .bind(app)
        .bind(bucket)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .context(what)?;
        if let Some(row) = row {
            let n = row.try_get::<i64, _>("n").context(what)?.max(0) as u64;
            let next = KvUsage {
                keys: usage.keys.saturating_sub(1),
                bytes: usage.bytes.saturating_sub(key.len() as u64 + n),
            };
            store_usage(&mut tx, app, next).await.context(what)?;
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Whether `key` is set.
    pub async fn kv_exists(&self, app: &str, bucket: &str, key: &str) -> Result<bool> {
        check_key(app, bucket, key)?;
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
        check_bucket(app, bucket)?;
        if let Some(cursor) = cursor {
            check_key_text("cursor", cursor)?;
        }
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
    /// 64-bit integer, [`StoreError::Overflow`] if the sum does not fit, and
    /// [`StoreError::QuotaExceeded`] if a new key would take the app past its
    /// quota; in all cases nothing changes.
    pub async fn kv_increment(
        &self,
        app: &str,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64> {
        check_key(app, bucket, key)?;
        let what = || kv_what("increment", app, bucket, key);
        let now = now_ms();
        let mut tx = self
            .platform()
            .begin_write(&format!(
                "increment key {} of app {app}, bucket {bucket:?}",
                shown(key)
            ))
            .await?;
        // The usage lock serializes the app's writers (PostgreSQL row lock;
        // SQLite holds the write lock), so the read below cannot race.
        let usage = lock_usage(&mut tx, app).await.context(what)?;
        let current: Option<Vec<u8>> =
            sqlx::query("SELECT value FROM kv_entries WHERE app = $1 AND bucket = $2 AND key = $3")
                .bind(app)
                .bind(bucket)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .and_then(|r| r.map(|r| r.try_get("value")).transpose())
                .context(what)?;
        let old = current.as_ref().map(|v| v.len() as u64);
        let value = match &current {
            None => Some(0),
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse::<i64>().ok()),
        };
        let Some(value) = value else {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotAnInteger(format!(
                "cannot increment key {} of app {app}, bucket {bucket:?}: \
                 its value is not a decimal 64-bit integer",
                shown(key)
            )));
        };
        let Some(next) = value.checked_add(delta) else {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Overflow(format!(
                "cannot increment key {} of app {app}, bucket {bucket:?}: \
                 {value} + {delta} overflows a 64-bit integer",
                shown(key)
            )));
        };
        let text = next.to_string().into_bytes();
        let quota = read_quota(&mut *tx).await.context(what)?;
        let usage = match next_usage(app, key, usage, old, text.len() as u64, quota) {
            Ok(usage) => usage,
            Err(e) => {
                tx.rollback().await.context(what)?;
                return Err(e);
            }
        };
        sqlx::query(
            "INSERT INTO kv_entries (app, bucket, key, value, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, bucket, key) DO UPDATE \
             SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(app)
        .bind(bucket)
        .bind(key)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        store_usage(&mut tx, app, usage).await.context(what)?;
        tx.commit().await.context(what)?;
        Ok(next)
    }

    /// `app`'s key-value usage (keys, bytes of keys and values).
    pub async fn kv_usage(&self, app: &str) -> Result<KvUsage> {
        check_app(app)?;
        let row = sqlx::query("SELECT key_count, byte_count FROM kv_usage WHERE app = $1")
            .bind(app)
            .fetch_optional(&self.platform().pool)
            .await
            .context(|| format!("failed to read the key-value usage of app {app}"))?;
        let Some(row) = row else {
            return Ok(KvUsage::default());
        };
        let keys: i64 = row
            .try_get("key_count")
            .context(|| format!("failed to decode the key-value usage of app {app}"))?;
        let bytes: i64 = row
            .try_get("byte_count")
            .context(|| format!("failed to decode the key-value usage of app {app}"))?;
        Ok(KvUsage {
            keys: keys.max(0) as u64,
            bytes: bytes.max(0) as u64,
        })
    }

    /// The environment's per-app key-value quota ([`KvQuota::DEFAULT`] unless set).
    pub async fn kv_quota(&self) -> Result<KvQuota> {
        read_quota(&self.platform().pool)
            .await
            .context(|| "failed to read the key-value quota".to_string())
    }

    /// Sets the environment's per-app key-value quota (kept in the platform
    /// catalog, so every front-end of a farm applies the same one).
    pub async fn set_kv_quota(&self, quota: KvQuota) -> Result<()> {
        let bytes = i64::try_from(quota.max_bytes).unwrap_or(i64::MAX);
        let keys = i64::try_from(quota.max_keys).unwrap_or(i64::MAX);
        self.set_setting(QUOTA_BYTES_SETTING, &bytes.to_string())
            .await?;
        self.set_setting(QUOTA_KEYS_SETTING, &keys.to_string())
            .await
    }
}

fn kv_what(action: &str, app: &str, bucket: &str, key: &str) -> String {
    format!(
        "failed to {action} key {} of app {app}, bucket {bucket:?}",
        shown(key)
    )
}
