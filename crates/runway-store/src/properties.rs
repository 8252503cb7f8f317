//! Per-environment property overrides of an app (platform catalog).
//!
//! Properties are keyed by app name and survive deletion of the app's last
//! version.
//!
//! Values of **secret** properties are encrypted at rest with the
//! environment's [`SecretsKey`]: a property is secret once marked (by the
//! controller, from any published version's manifest) until an admin
//! un-marks it. Marking seals the stored value; un-marking opens it.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::error::{Context, Result, StoreError};
use crate::kv::check_no_nul;
use crate::secrets::{SecretsKey, property_context};
use crate::{Store, now_ms};

impl Store {
    /// All property overrides of `app`, secret values decrypted.
    pub async fn properties(&self, app: &str) -> Result<BTreeMap<String, String>> {
        check_no_nul("app name", app)?;
        let rows =
            sqlx::query("SELECT key, value, key_id FROM properties WHERE app = $1 ORDER BY key")
                .bind(app)
                .fetch_all(&self.platform().pool)
                .await
                .context(|| format!("failed to read properties of {app}"))?;
        let mut properties = BTreeMap::new();
        for row in rows {
            let (key, value, key_id): (String, String, Option<String>) = (
                row.try_get("key")
                    .context(|| format!("failed to decode properties of {app}"))?,
                row.try_get("value")
                    .context(|| format!("failed to decode properties of {app}"))?,
                row.try_get("key_id")
                    .context(|| format!("failed to decode properties of {app}"))?,
            );
            let value = match key_id {
                Some(id) => open(self.secrets_key(), app, &key, &id, &value)?,
                None => value,
            };
            properties.insert(key, value);
        }
        Ok(properties)
    }

    /// Applies `changes` to `app`'s properties in one transaction: `Some` sets,
    /// `None` unsets. Later changes to the same key win.
    pub async fn set_properties(
        &self,
        app: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<()> {
        let what = || format!("failed to change properties of {app}");
        check_changes(app, changes)?;
        let mut tx = self
            .platform()
            .begin_write(&format!("change properties of {app}"))
            .await?;
        write_properties(&mut tx, app, changes, self.secrets_key()).await?;
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// The properties of `app` that are marked secret.
    pub async fn secret_marks(&self, app: &str) -> Result<BTreeSet<String>> {
        let rows = sqlx::query(
            "SELECT key FROM secret_properties WHERE app = $1 AND secret = 1 ORDER BY key",
        )
        .bind(app)
        .fetch_all(&self.platform().pool)
        .await
        .context(|| format!("failed to read the secret properties of {app}"))?;
        rows.iter()
            .map(|r| r.try_get("key"))
            .collect::<sqlx::Result<_>>()
            .context(|| format!("failed to decode the secret properties of {app}"))
    }

    /// Marks `keys` of `app` secret and encrypts their stored values, in one
    /// transaction. With `overrule_unmark` (a new version declares them
    /// secret) a key an admin un-marked is marked again; without it (marks
    /// recovered from old manifests at start) an un-marking stands.
    pub async fn mark_secret_properties(
        &self,
        app: &str,
        keys: &[String],
        overrule_unmark: bool,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let what = || format!("failed to mark secret properties of {app}");
        let mut tx = self
            .platform()
            .begin_write(&format!("mark secret properties of {app}"))
            .await?;
        let sql = if overrule_unmark {
            "INSERT INTO secret_properties (app, key, secret, updated_at_ms) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (app, key) DO UPDATE SET secret = 1, updated_at_ms = excluded.updated_at_ms"
        } else {
            "INSERT INTO secret_properties (app, key, secret, updated_at_ms) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (app, key) DO NOTHING"
        };
        let now = now_ms();
        for key in keys {
            sqlx::query(sql)
                .bind(app)
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context(what)?;
        }
        let sealed = seal_plaintext(&mut tx, self.secrets_key(), Some(app)).await?;
        tx.commit().await.context(what)?;
        if sealed > 0 {
            self.scrub_freed_pages().await;
        }
        Ok(())
    }

    /// Un-marks a secret property of `app`: its value is stored (and shown)
    /// in plaintext from now on, until a version declares it secret again.
    pub async fn unmark_secret_property(&self, app: &str, key: &str) -> Result<()> {
        let what = || format!("failed to un-mark secret property {key:?} of {app}");
        let mut tx = self
            .platform()
            .begin_write(&format!("un-mark secret property {key:?} of {app}"))
            .await?;
        sqlx::query(
            "INSERT INTO secret_properties (app, key, secret, updated_at_ms) VALUES ($1, $2, 0, $3) \
             ON CONFLICT (app, key) DO UPDATE SET secret = 0, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(app)
        .bind(key)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .context(what)?;
        let row = sqlx::query("SELECT value, key_id FROM properties WHERE app = $1 AND key = $2")
            .bind(app)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .context(what)?;
        if let Some(row) = row {
            let value: String = row.try_get("value").context(what)?;
            let key_id: Option<String> = row.try_get("key_id").context(what)?;
            if let Some(id) = key_id {
                let plain = open(self.secrets_key(), app, key, &id, &value)?;
                sqlx::query(
                    "UPDATE properties SET value = $1, key_id = NULL WHERE app = $2 AND key = $3",
                )
                .bind(plain)
                .bind(app)
                .bind(key)
                .execute(&mut *tx)
                .await
                .context(what)?;
            }
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Makes `key` the environment's secrets key: checks that every
    /// encrypted value in the catalog opens with it (a wrong key is an error
    /// naming its file), then encrypts every plaintext value of a marked
    /// property (a catalog written before encryption). Returns how many
    /// values it encrypted. Called once, at start, before anything else.
    pub async fn use_secrets_key(&self, key: SecretsKey) -> Result<u64> {
        let what = || "failed to check the encrypted property values".to_string();
        let rows =
            sqlx::query("SELECT app, key, value, key_id FROM properties WHERE key_id IS NOT NULL")
                .fetch_all(&self.platform().pool)
                .await
                .context(what)?;
        for row in rows {
            let app: String = row.try_get("app").context(what)?;
            let name: String = row.try_get("key").context(what)?;
            let value: String = row.try_get("value").context(what)?;
            let id: String = row.try_get("key_id").context(what)?;
            open(Some(&key), &app, &name, &id, &value)?;
        }
        if self.inner.secrets.set(key).is_err() {
            return Err(StoreError::Invalid(
                "a secrets key is already in use by this store".into(),
            ));
        }
        let mut tx = self
            .platform()
            .begin_write("encrypt secret property values")
            .await?;
        let sealed = seal_plaintext(&mut tx, self.secrets_key(), None).await?;
        tx.commit().await.context(what)?;
        if sealed > 0 {
            tracing::info!(sealed, "encrypted plaintext secret property values");
            self.scrub_freed_pages().await;
        }
        Ok(sealed)
    }

    pub(crate) fn secrets_key(&self) -> Option<&SecretsKey> {
        self.inner.secrets.get()
    }

    /// After plaintext values were overwritten: leaves no copy in the
    /// SQLite WAL (checkpointed and truncated; freed pages are zeroed by
    /// `secure_delete`), or in PostgreSQL's dead tuples (the table is
    /// rewritten). Best effort: failures are logged.
    async fn scrub_freed_pages(&self) {
        let sql = match self.platform().backend {
            crate::db::Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
            crate::db::Backend::Postgres => "VACUUM FULL properties",
        };
        if let Err(e) = sqlx::query(sql).execute(&self.platform().pool).await {
            tracing::warn!("{sql} after encrypting property values failed: {e}");
        }
    }
}

/// Refuses what only one backend would store (PostgreSQL TEXT has no NUL),
/// before anything is written.
fn check_changes(app: &str, changes: &[(String, Option<String>)]) -> Result<()> {
    check_no_nul("app name", app)?;
    for (key, value) in changes {
        check_no_nul("property name", key)?;
        // The value itself is not shown: it may be a secret.
        if let Some(at) = value.as_deref().and_then(|v| v.find('\0')) {
            return Err(StoreError::Invalid(format!(
                "the value of property {key} of app {app} contains a NUL byte (\\0) at byte {at}; \
                 remove it (property values are text without NUL)"
            )));
        }
    }
    Ok(())
}

/// The plaintext of a sealed value, or an error that names the key file.
fn open(
    secrets: Option<&SecretsKey>,
    app: &str,
    key: &str,
    key_id: &str,
    sealed: &str,
) -> Result<String> {
    let Some(secrets) = secrets else {
        return Err(StoreError::Invalid(format!(
            "property {key:?} of {app} is encrypted (key {key_id}) and no secrets key is in use; \
             only the controller, started with its secrets key, can read it"
        )));
    };
    if secrets.id() != key_id {
        return Err(StoreError::SecretsKey {
            path: secrets.path().to_path_buf(),
            problem: format!(
                "holds key {}, but the catalog's secret property values (e.g. {key:?} of {app}) \
                 were encrypted with key {key_id}; start with the key file they were encrypted \
                 with (--secrets-key-file, RUNWAY_SECRETS_KEY_FILE or <data-dir>/secrets.key)",
                secrets.id()
            ),
        });
    }
    secrets
        .open(&property_context(app, key), sealed)
        .ok_or_else(|| StoreError::SecretsKey {
            path: secrets.path().to_path_buf(),
            problem: format!(
                "cannot decrypt property {key:?} of {app}: the stored value was altered; \
                 set it again with `runway app config {app} {key}=…`"
            ),
        })
}

/// Encrypts, inside `tx`, every plaintext value of a marked property (of
/// `app`, or of every app). Returns how many.
async fn seal_plaintext(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    secrets: Option<&SecretsKey>,
    app: Option<&str>,
) -> Result<u64> {
    let what = || "failed to encrypt secret property values".to_string();
    const MARKED_PLAINTEXT: &str = "SELECT p.app, p.key, p.value FROM properties p \
         JOIN secret_properties s ON s.app = p.app AND s.key = p.key \
         WHERE s.secret = 1 AND p.key_id IS NULL";
    let rows = match app {
        Some(app) => {
            sqlx::query(&format!("{MARKED_PLAINTEXT} AND p.app = $1"))
                .bind(app)
                .fetch_all(&mut **tx)
                .await
        }
        None => sqlx::query(MARKED_PLAINTEXT).fetch_all(&mut **tx).await,
    }
    .context(what)?;
    let mut sealed = 0;
    for row in rows {
        let app: String = row.try_get("app").context(what)?;
        let key: String = row.try_get("key").context(what)?;
        let value: String = row.try_get("value").context(what)?;
        let (value, key_id) = seal(secrets, &app, &key, &value)?;
        sqlx::query("UPDATE properties SET value = $1, key_id = $2 WHERE app = $3 AND key = $4")
            .bind(value)
            .bind(key_id)
            .bind(&app)
            .bind(&key)
            .execute(&mut **tx)
            .await
            .context(what)?;
        sealed += 1;
    }
    Ok(sealed)
}

/// The sealed value and key id, or an error if no key is in use.
fn seal(
    secrets: Option<&SecretsKey>,
    app: &str,
    key: &str,
    value: &str,
) -> Result<(String, String)> {
    let secrets = secrets.ok_or_else(|| {
        StoreError::Invalid(format!(
            "property {key:?} of {app} is secret and no secrets key is in use to encrypt it; \
             only the controller, started with its secrets key, can write it"
        ))
    })?;
    Ok((
        secrets.seal(&property_context(app, key), value),
        secrets.id().to_string(),
    ))
}

/// Applies property `changes` of `app` inside `tx` (`None` unsets); values
/// of properties marked secret are encrypted with `secrets`.
pub(crate) async fn write_properties(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    app: &str,
    changes: &[(String, Option<String>)],
    secrets: Option<&SecretsKey>,
) -> Result<()> {
    check_changes(app, changes)?;
    let now = now_ms();
    for (key, value) in changes {
        let what = || format!("failed to change property {key:?} of {app}");
        match value {
            Some(value) => {
                let marked =
                    sqlx::query("SELECT secret FROM secret_properties WHERE app = $1 AND key = $2")
                        .bind(app)
                        .bind(key)
                        .fetch_optional(&mut **tx)
                        .await
                        .context(what)?
                        .map(|row| row.try_get::<i64, _>("secret"))
                        .transpose()
                        .context(what)?
                        == Some(1);
                let (value, key_id) = if marked {
                    let (sealed, id) = seal(secrets, app, key, value)?;
                    (sealed, Some(id))
                } else {
                    (value.clone(), None)
                };
                sqlx::query(
                    "INSERT INTO properties (app, key, value, key_id, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app, key) DO UPDATE \
                     SET value = excluded.value, key_id = excluded.key_id, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(app)
                .bind(key)
                .bind(value)
                .bind(key_id)
                .bind(now)
                .execute(&mut **tx)
                .await
                .context(what)?;
            }
            None => {
                sqlx::query("DELETE FROM properties WHERE app = $1 AND key = $2")
                    .bind(app)
                    .bind(key)
                    .execute(&mut **tx)
                    .await
                    .context(what)?;
            }
        }
    }
    Ok(())
}
