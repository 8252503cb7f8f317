//! Per-environment property overrides of an app (platform catalog).
//!
//! Properties are keyed by app name and survive deletion of the app's last
//! version.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::error::{Context, Result, StoreError};
use crate::kv::check_no_nul;
use crate::{Store, now_ms};

impl Store {
    /// All property overrides of `app`.
    pub async fn properties(&self, app: &str) -> Result<BTreeMap<String, String>> {
        check_no_nul("app name", app)?;
        let rows = sqlx::query("SELECT key, value FROM properties WHERE app = $1 ORDER BY key")
            .bind(app)
            .fetch_all(&self.platform().pool)
            .await
            .context(|| format!("failed to read properties of {app}"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<sqlx::Result<_>>()
            .context(|| format!("failed to decode properties of {app}"))
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
        write_properties(&mut tx, app, changes).await?;
        tx.commit().await.context(what)?;
        Ok(())
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

/// Applies property `changes` of `app` inside `tx` (`None` unsets).
pub(crate) async fn write_properties(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    app: &str,
    changes: &[(String, Option<String>)],
) -> Result<()> {
    check_changes(app, changes)?;
    let now = now_ms();
    for (key, value) in changes {
        match value {
            Some(value) => sqlx::query(
                "INSERT INTO properties (app, key, value, updated_at_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (app, key) DO UPDATE \
                 SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
            )
            .bind(app)
            .bind(key)
            .bind(value)
            .bind(now),
            None => sqlx::query("DELETE FROM properties WHERE app = $1 AND key = $2")
                .bind(app)
                .bind(key),
        }
        .execute(&mut **tx)
        .await
        .context(|| format!("failed to change property {key:?} of {app}"))?;
    }
    Ok(())
}
