//! The registered front-ends of a farm (platform catalog).
//!
//! A front-end registers on every start and heartbeats while it runs; the
//! controller derives "offline" from the last heartbeat, so no background task
//! has to mark anything. A row leaves the catalog only when an operator
//! removes it.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Context, Result, StoreError};
use crate::{Store, now_ms};

/// A front-end as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendRecord {
    pub name: String,
    /// Random identity kept in the front-end's data directory.
    pub node_id: String,
    /// Base URL it is reached at, `http://host:port`.
    pub address: String,
    pub serves_apps: bool,
    pub runs_timers: bool,
    pub sends_email: bool,
    /// Fingerprint of its WebAssembly engine settings.
    pub engine: String,
    pub runway_version: String,
    /// The deployment zone it belongs to (set at its start).
    pub zone: String,
    /// Random per registration; the front-end's key is derived from it.
    pub key_nonce: String,
    pub enabled: bool,
    /// Generation it last reported serving.
    pub generation: i64,
    /// Whether it last reported serving the committed generation.
    pub ready: bool,
    pub registered_at_ms: i64,
    pub last_heartbeat_ms: i64,
}

/// What a front-end says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendRegistration {
    pub name: String,
    pub node_id: String,
    pub address: String,
    pub serves_apps: bool,
    pub runs_timers: bool,
    pub sends_email: bool,
    pub engine: String,
    pub runway_version: String,
    /// Its deployment zone; must exist.
    pub zone: String,
}

const COLUMNS: &str = "name, node_id, address, serves_apps, runs_timers, sends_email, engine, \
                       runway_version, key_nonce, enabled, generation, ready, registered_at_ms, \
                       last_heartbeat_ms, zone";

fn frontend_from_row(r: &AnyRow) -> sqlx::Result<FrontendRecord> {
    let flag = |c: &str| r.try_get::<i64, _>(c).map(|v| v != 0);
    Ok(FrontendRecord {
        name: r.try_get("name")?,
        node_id: r.try_get("node_id")?,
        address: r.try_get("address")?,
        serves_apps: flag("serves_apps")?,
        runs_timers: flag("runs_timers")?,
        sends_email: flag("sends_email")?,
        engine: r.try_get("engine")?,
        runway_version: r.try_get("runway_version")?,
        zone: r.try_get("zone")?,
        key_nonce: r.try_get("key_nonce")?,
        enabled: flag("enabled")?,
        generation: r.try_get("generation")?,
        ready: flag("ready")?,
        registered_at_ms: r.try_get("registered_at_ms")?,
        last_heartbeat_ms: r.try_get("last_heartbeat_ms")?,
    })
}

impl Store {
    /// Registers a front-end, or re-registers it after a restart (same
    /// `node_id`): its address, flags and engine are updated, a new
    /// `key_nonce` replaces the old one (the old key stops working), it starts
    /// not ready at generation 0, and `enabled` is kept. Another process
    /// claiming a registered name is a [`StoreError::Conflict`] naming both.
    pub async fn register_frontend(
        &self,
        r: &FrontendRegistration,
        key_nonce: &str,
    ) -> Result<FrontendRecord> {
        let what = || format!("failed to register front-end {}", r.name);
        let now = now_ms();
        let mut tx = self
            .platform()
            .begin_write(&format!("register front-end {}", r.name))
            .await?;
        let zone_exists = sqlx::query("SELECT 1 AS present FROM zones WHERE name = $1")
            .bind(&r.zone)
            .fetch_optional(&mut *tx)
            .await
            .context(what)?
            .is_some();
        if !zone_exists {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!(
                "front-end {} names zone {}, which this environment does not have; create it \
                 with `runway zone create {} --address URL` (`runway zone list` shows the \
                 zones), or start the front-end with another --zone",
                r.name, r.zone, r.zone
            )));
        }
        // Insert-or-nothing first: on PostgreSQL a conflicting insert waits for
        // a concurrent registration of the same name to finish.
        sqlx::query(&format!(
            "INSERT INTO frontends ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, 0, 0, $10, $11, $12) \
             ON CONFLICT (name) DO NOTHING"
        ))
        .bind(&r.name)
        .bind(&r.node_id)
        .bind(&r.address)
        .bind(i64::from(r.serves_apps))
        .bind(i64::from(r.runs_timers))
        .bind(i64::from(r.sends_email))
        .bind(&r.engine)
        .bind(&r.runway_version)
        .bind(key_nonce)
        .bind(now)
        .bind(now)
        .bind(&r.zone)
        .execute(&mut *tx)
        .await
        .context(what)?;
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM frontends WHERE name = $1"))
            .bind(&r.name)
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| frontend_from_row(&row))
            .context(what)?;
        if row.node_id != r.node_id {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Conflict(format!(
                "a front-end named {} is already registered from another data directory \
                 (address {}, last heartbeat at {} ms): start this one with another --name, \
                 or remove the old one with `runway frontend remove {}`",
                r.name, row.address, row.last_heartbeat_ms, r.name
            )));
        }
        let row = sqlx::query(&format!(
            "UPDATE frontends SET address = $1, serves_apps = $2, runs_timers = $3, \
             sends_email = $4, engine = $5, runway_version = $6, key_nonce = $7, \
             generation = 0, ready = 0, registered_at_ms = $8, last_heartbeat_ms = $9, \
             zone = $10 WHERE name = $11 RETURNING {COLUMNS}"
        ))
        .bind(&r.address)
        .bind(i64::from(r.serves_apps))
        .bind(i64::from(r.runs_timers))
        .bind(i64::from(r.sends_email))
        .bind(&r.engine)
        .bind(&r.runway_version)
        .bind(key_nonce)
        .bind(now)
        .bind(now)
        .bind(&r.zone)
        .bind(&r.name)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| frontend_from_row(&row))
        .context(what)?;
        tx.commit().await.context(what)?;
        Ok(row)
    }

    /// Every registered front-end, by name.
    pub async fn frontends(&self) -> Result<Vec<FrontendRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM frontends ORDER BY name"))
            .fetch_all(&self.platform().pool)
            .await
            .context(|| "failed to list front-ends".to_string())?;
        rows.iter()
            .map(frontend_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode front-ends".to_string())
    }

    pub async fn frontend(&self, name: &str) -> Result<Option<FrontendRecord>> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM frontends WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.platform().pool)
            .await
            .and_then(|r| r.as_ref().map(frontend_from_row).transpose())
            .context(|| format!("failed to read front-end {name}"))
    }

    /// Records a heartbeat: the generation served and readiness, now. It is
    /// recorded ready only if it says so and serves its zone's committed
    /// generation (as of this write), or is `switching` to it. Returns the updated row,
    /// or `None` if no front-end has that name and nonce (removed, or
    /// re-registered by a newer start).
    pub async fn heartbeat_frontend(
        &self,
        name: &str,
        key_nonce: &str,
        generation: i64,
        ready: bool,
        switching: bool,
    ) -> Result<Option<FrontendRecord>> {
        sqlx::query(&format!(
            "UPDATE frontends SET generation = $1, last_heartbeat_ms = $2, \
             ready = CASE WHEN $3 = 1 AND ($4 = 1 OR $5 >= \
             COALESCE((SELECT z.generation FROM zones z WHERE z.name = frontends.zone), \
             (SELECT generation FROM environment WHERE id = 1))) THEN 1 ELSE 0 END \
             WHERE name = $6 AND key_nonce = $7 RETURNING {COLUMNS}"
        ))
        .bind(generation)
        .bind(now_ms())
        .bind(i64::from(ready))
        .bind(i64::from(switching))
        .bind(generation)
        .bind(name)
        .bind(key_nonce)
        .fetch_optional(&self.platform().pool)
        .await
        .and_then(|r| r.as_ref().map(frontend_from_row).transpose())
        .context(|| format!("failed to record a heartbeat of front-end {name}"))
    }

    /// Records that a front-end switched to `generation` (the controller saw
    /// its commit succeed): ready, at that generation, unless it already
    /// reported a newer one.
    pub async fn record_frontend_commit(&self, name: &str, generation: i64) -> Result<()> {
        sqlx::query(
            "UPDATE frontends SET generation = $1, ready = 1 WHERE name = $2 AND generation <= $1",
        )
        .bind(generation)
        .bind(name)
        .execute(&self.platform().pool)
        .await
        .context(|| format!("failed to record the commit of front-end {name}"))?;
        Ok(())
    }

    /// Marks a front-end not ready (it missed a commit). Its next heartbeat
    /// says again what it serves.
    pub async fn mark_frontend_behind(&self, name: &str) -> Result<()> {
        sqlx::query("UPDATE frontends SET ready = 0 WHERE name = $1")
            .bind(name)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to mark front-end {name} behind"))?;
        Ok(())
    }

    /// Enables or disables a front-end. `false` if there is no such front-end.
    pub async fn set_frontend_enabled(&self, name: &str, enabled: bool) -> Result<bool> {
        let r = sqlx::query("UPDATE frontends SET enabled = $1 WHERE name = $2")
            .bind(i64::from(enabled))
            .bind(name)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to change front-end {name}"))?;
        Ok(r.rows_affected() > 0)
    }

    /// Forgets a front-end. `false` if there was none.
    pub async fn remove_frontend(&self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM frontends WHERE name = $1")
            .bind(name)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to remove front-end {name}"))?;
        Ok(r.rows_affected() > 0)
    }
}
