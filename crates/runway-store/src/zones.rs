//! Deployment zones (platform catalog): sets of front-ends with an address,
//! and the zone each app is deployed to.
//!
//! Zone `global` always exists and cannot be removed; front-ends and apps
//! without a zone belong to it. An app's zone is written only by the
//! transaction that records a deployment (`Store::commit_deployment_in_zones`),
//! so what a front-end loads and what the catalog says never differ. Each zone
//! keeps the generation at which its routing table last changed: its
//! front-ends are ready once they serve at least that one, so a deployment in
//! one zone leaves the others' front-ends untouched (and ready).

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Context, Result, StoreError};
use crate::{Store, now_ms};

/// The zone every environment has.
pub const GLOBAL_ZONE: &str = "global";

/// A deployment zone as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    pub name: String,
    /// The zone's balancer or its single server (`http(s)://host:port`);
    /// `None` for `global` until set.
    pub address: Option<String>,
    /// App-to-app calls into this zone use HTTPS.
    pub https_internal: bool,
    /// The committed generation at which this zone's table last changed.
    pub generation: i64,
    pub created_at_ms: i64,
}

const COLUMNS: &str = "name, address, https_internal, generation, created_at_ms";

fn zone_from_row(r: &AnyRow) -> sqlx::Result<ZoneRecord> {
    Ok(ZoneRecord {
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        https_internal: r.try_get::<i64, _>("https_internal")? != 0,
        generation: r.try_get("generation")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// Where a running app is served ([`Store::app_location`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLocation {
    pub zone: String,
    /// The zone's address; `None` when the zone has none.
    pub address: Option<String>,
    pub https_internal: bool,
}

/// An app moving to another zone, and the zones whose tables a deployment
/// changes (their generation becomes the deployment's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneChanges {
    /// app → its new zone.
    pub moves: Vec<(String, String)>,
    /// The zones whose routing table the deployment changes; `None` = every zone.
    pub touched: Option<Vec<String>>,
    /// Environment settings the deployment changes (`None` unsets): the
    /// hostname, which is in every table it stages.
    pub settings: Vec<(String, Option<String>)>,
}

impl Store {
    /// Every zone, by name (`global` included).
    pub async fn zones(&self) -> Result<Vec<ZoneRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM zones ORDER BY name"))
            .fetch_all(&self.platform().pool)
            .await
            .context(|| "failed to list zones".to_string())?;
        rows.iter()
            .map(zone_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode zones".to_string())
    }

    /// One zone, if it exists.
    pub async fn zone(&self, name: &str) -> Result<Option<ZoneRecord>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM zones WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.platform().pool)
            .await
            .and_then(|r| r.as_ref().map(zone_from_row).transpose())
            .context(|| format!("failed to read zone {name}"))
    }

    /// Creates zone `name`. Its generation starts at the committed one (its
    /// table is empty until an app is deployed to it). A zone of that name
    /// already existing is a [`StoreError::Conflict`].
    pub async fn create_zone(
        &self,
        name: &str,
        address: &str,
        https_internal: bool,
    ) -> Result<ZoneRecord> {
        let what = || format!("failed to create zone {name}");
        let mut tx = self
            .platform()
            .begin_write(&format!("create zone {name}"))
            .await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO zones ({COLUMNS}) SELECT $1, $2, $3, generation, $4 \
             FROM environment WHERE id = 1 ON CONFLICT (name) DO NOTHING"
        ))
        .bind(name)
        .bind(address)
        .bind(i64::from(https_internal))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Conflict(format!(
                "zone {name} already exists; `runway zone show {name}` shows it, \
                 `runway zone set {name} --address URL` changes its address"
            )));
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM zones WHERE name = $1"))
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| zone_from_row(&r))
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(row)
    }

    /// Changes a zone's address and HTTPS flag. `false` if there is no such zone.
    pub async fn set_zone(&self, name: &str, address: &str, https_internal: bool) -> Result<bool> {
        let r = sqlx::query("UPDATE zones SET address = $1, https_internal = $2 WHERE name = $3")
            .bind(address)
            .bind(i64::from(https_internal))
            .bind(name)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to change zone {name}"))?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes zone `name`, in one transaction with the checks: `global`
    /// cannot be removed, nor a zone that a registered front-end or an app
    /// belongs to (each refusal names them and the fix).
    pub async fn remove_zone(&self, name: &str) -> Result<()> {
        let what = || format!("failed to remove zone {name}");
        if name == GLOBAL_ZONE {
            return Err(StoreError::Conflict(
                "zone global cannot be removed: every environment has it, and front-ends \
                 and apps without a zone belong to it"
                    .to_string(),
            ));
        }
        let mut tx = self
            .platform()
            .begin_write(&format!("remove zone {name}"))
            .await?;
        let names = |rows: Vec<AnyRow>, column: &str| -> sqlx::Result<Vec<String>> {
            rows.iter()
                .map(|r| r.try_get::<String, _>(column))
                .collect()
        };
        let frontends = sqlx::query("SELECT name FROM frontends WHERE zone = $1 ORDER BY name")
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .and_then(|rows| names(rows, "name"))
            .context(what)?;
        let apps = sqlx::query("SELECT app FROM app_zones WHERE zone = $1 ORDER BY app")
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .and_then(|rows| names(rows, "app"))
            .context(what)?;
        if !frontends.is_empty() || !apps.is_empty() {
            tx.rollback().await.context(what)?;
            let mut uses = Vec::new();
            if !frontends.is_empty() {
                uses.push(format!(
                    "front-ends {} belong to it (stop them and `runway frontend remove NAME`, \
                     or restart them with another --zone)",
                    frontends.join(", ")
                ));
            }
            if !apps.is_empty() {
                uses.push(format!(
                    "apps {} are deployed to it (move each with `runway app zone APP ZONE`)",
                    apps.join(", ")
                ));
            }
            return Err(StoreError::Conflict(format!(
                "zone {name} is in use and was not removed: {}",
                uses.join("; ")
            )));
        }
        let removed = sqlx::query("DELETE FROM zones WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .context(what)?
            .rows_affected();
        if removed == 0 {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!(
                "no zone named {name} in this environment; `runway zone list` shows them"
            )));
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// The zone of every app that has one other than `global` (app → zone).
    pub async fn app_zones(&self) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query("SELECT app, zone FROM app_zones ORDER BY app")
            .fetch_all(&self.platform().pool)
            .await
            .context(|| "failed to list the apps' zones".to_string())?;
        rows.iter()
            .map(|r| Ok((r.try_get("app")?, r.try_get("zone")?)))
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode the apps' zones".to_string())
    }

    /// The zone app `app` is deployed to (`global` unless assigned).
    pub async fn app_zone(&self, app: &str) -> Result<String> {
        let row = sqlx::query("SELECT zone FROM app_zones WHERE app = $1")
            .bind(app)
            .fetch_optional(&self.platform().pool)
            .await
            .context(|| format!("failed to read the zone of app {app}"))?;
        Ok(match row {
            Some(r) => r
                .try_get("zone")
                .context(|| format!("failed to decode the zone of app {app}"))?,
            None => GLOBAL_ZONE.to_string(),
        })
    }

    /// Assigns app `app`, which runs nothing, to zone `zone` (no routing
    /// table changes; its next deployment goes there). A running app moves
    /// only through a deployment ([`Store::commit_deployment_in_zones`]).
    pub async fn set_app_zone(&self, app: &str, zone: &str) -> Result<()> {
        let what = || format!("failed to assign app {app} to zone {zone}");
        let mut tx = self
            .platform()
            .begin_write(&format!("assign app {app} to zone {zone}"))
            .await?;
        let running = sqlx::query("SELECT running_version FROM apps WHERE name = $1")
            .bind(app)
            .fetch_optional(&mut *tx)
            .await
            .context(what)?;
        match running {
            None => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::NotFound(format!(
                    "no app named {app} in this environment; `runway app list` shows them"
                )));
            }
            Some(row) => {
                let version: Option<String> = row.try_get("running_version").context(what)?;
                if let Some(version) = version {
                    tx.rollback().await.context(what)?;
                    return Err(StoreError::Conflict(format!(
                        "app {app} runs {version}: moving it to zone {zone} is a deployment"
                    )));
                }
            }
        }
        let changes = ZoneChanges {
            moves: vec![(app.to_string(), zone.to_string())],
            touched: Some(Vec::new()),
            settings: Vec::new(),
        };
        write_zone_changes(&mut tx, 0, 0, &changes).await?;
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Where running app `app` is served: its zone, that zone's address and
    /// HTTPS flag. `None` when the app does not exist or runs nothing.
    pub async fn app_location(&self, app: &str) -> Result<Option<AppLocation>> {
        let row = sqlx::query(
            "SELECT COALESCE(az.zone, 'global') AS zone, z.address, z.https_internal \
             FROM apps a LEFT JOIN app_zones az ON az.app = a.name \
             LEFT JOIN zones z ON z.name = COALESCE(az.zone, 'global') \
             WHERE a.name = $1 AND a.running_version IS NOT NULL",
        )
        .bind(app)
        .fetch_optional(&self.platform().pool)
        .await
        .context(|| format!("failed to find where app {app} runs"))?;
        row.map(|r| {
            Ok(AppLocation {
                zone: r.try_get("zone")?,
                address: r.try_get("address")?,
                https_internal: r.try_get::<Option<i64>, _>("https_internal")?.unwrap_or(0) != 0,
            })
        })
        .transpose()
        .context(|| format!("failed to decode where app {app} runs"))
    }

    /// The value of setting `key`, storing `value` first if it has none
    /// (the first writer wins; every caller gets the same value).
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let what = || format!("failed to read or create setting {key:?}");
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.platform().pool)
        .await
        .context(what)?;
        sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.platform().pool)
            .await
            .and_then(|r| r.try_get("value"))
            .context(what)
    }

    /// The committed generation of zone `zone`'s table: the environment's
    /// generation when the zone is unknown (so nothing is ready early).
    pub async fn zone_generation(&self, zone: &str) -> Result<i64> {
        sqlx::query(
            "SELECT COALESCE((SELECT generation FROM zones WHERE name = $1), \
             (SELECT generation FROM environment WHERE id = 1)) AS generation",
        )
        .bind(zone)
        .fetch_one(&self.platform().pool)
        .await
        .and_then(|r| r.try_get("generation"))
        .context(|| format!("failed to read the generation of zone {zone}"))
    }
}

/// Applies a deployment's zone changes inside its recording transaction:
/// app moves (a move to `global` deletes the row), then the touched zones'
/// generation. A move to a zone that no longer exists fails the transaction.
pub(crate) async fn write_zone_changes(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
    generation: i64,
    changes: &ZoneChanges,
) -> Result<()> {
    let what = || format!("failed to record the zones of deployment {id}");
    for (app, zone) in &changes.moves {
        let exists = sqlx::query("SELECT 1 AS present FROM zones WHERE name = $1")
            .bind(zone)
            .fetch_optional(&mut **tx)
            .await
            .context(what)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!(
                "cannot commit deployment {id}: zone {zone} (of app {app}) was removed \
                 meanwhile; create it with `runway zone create {zone} --address URL`"
            )));
        }
        sqlx::query("DELETE FROM app_zones WHERE app = $1")
            .bind(app)
            .execute(&mut **tx)
            .await
            .context(what)?;
        if zone != GLOBAL_ZONE {
            sqlx::query("INSERT INTO app_zones (app, zone) VALUES ($1, $2)")
                .bind(app)
                .bind(zone)
                .execute(&mut **tx)
                .await
                .context(what)?;
        }
    }
    for (key, value) in &changes.settings {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO settings (key, value, updated_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(key)
                .bind(value)
                .bind(now_ms())
                .execute(&mut **tx)
                .await
                .context(what)?;
            }
            None => {
                sqlx::query("DELETE FROM settings WHERE key = $1")
                    .bind(key)
                    .execute(&mut **tx)
                    .await
                    .context(what)?;
            }
        }
    }
    match &changes.touched {
        None => {
            sqlx::query("UPDATE zones SET generation = $1")
                .bind(generation)
                .execute(&mut **tx)
                .await
                .context(what)?;
        }
        Some(zones) => {
            for zone in zones {
                sqlx::query("UPDATE zones SET generation = $1 WHERE name = $2")
                    .bind(generation)
                    .bind(zone)
                    .execute(&mut **tx)
                    .await
                    .context(what)?;
            }
        }
    }
    Ok(())
}
