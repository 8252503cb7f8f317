//! The controller lease (platform catalog): which controller of an
//! environment is active.
//!
//! One row holds the holder's id and address, a **term** and an expiry. A
//! controller acquires or renews it with one conditional `UPDATE`
//! (compare-and-set): it succeeds when the row is free (expired) or already
//! this holder's at the term it knows. Taking the lease from anyone else (or
//! from nobody) increases the term by one; renewing keeps it.
//!
//! **Clock.** Every expiry is computed and compared on the database server's
//! clock (`clock_timestamp()` on PostgreSQL, SQLite's `julianday('now')` on
//! the one machine that opens the files), never on a controller's, so the
//! controllers' clocks do not need to agree.
//!
//! **Fencing.** A store that a controller marked with its lease
//! ([`Store::set_fence`]) records a deployment
//! ([`Store::commit_deployment_with`]) only if, inside the recording
//! transaction, the lease row still names that holder and term and has not
//! expired. The check is an `UPDATE` of the lease row, so on PostgreSQL it
//! holds the row lock until the transaction ends: a takeover either commits
//! before (the record fails) or waits until the record is committed (and then
//! finds a recorded deployment). A controller that lost its lease can never
//! record a deployment.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Store;
use crate::db::Backend;
use crate::error::{Context, Result, StoreError};

/// The lease row as read from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The holder's id (`""` if no controller ever held it).
    pub holder: String,
    /// Where the holder said clients reach it.
    pub address: String,
    /// Grows by one at every change of holder.
    pub term: i64,
    /// Milliseconds until it expires on the database clock (≤ 0: expired).
    pub expires_in_ms: i64,
}

impl LeaseState {
    /// Whether a holder still has it.
    pub fn is_live(&self) -> bool {
        !self.holder.is_empty() && self.expires_in_ms > 0
    }
}

/// The answer to [`Store::acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The caller holds the lease (just taken or renewed).
    Held(LeaseState),
    /// Another controller holds it; the caller is a standby.
    Other(LeaseState),
}

/// The holder and term a store checks before recording a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub term: i64,
}

/// The database clock in milliseconds since the unix epoch, as SQL.
pub(crate) fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "(CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))",
        Backend::Sqlite => "(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))",
    }
}

fn lease_from_row(r: &AnyRow) -> sqlx::Result<LeaseState> {
    Ok(LeaseState {
        holder: r.try_get("holder")?,
        address: r.try_get("address")?,
        term: r.try_get("term")?,
        expires_in_ms: r.try_get("expires_in_ms")?,
    })
}

impl Store {
    /// Takes or renews the controller lease for `holder` (reached at
    /// `address`) for `ttl`. `term` is the term the caller holds (`None` if
    /// it holds none): a renewal must name it, so a holder whose lease was
    /// taken over meanwhile cannot renew its way back without a new term.
    pub async fn acquire_lease(
        &self,
        holder: &str,
        address: &str,
        term: Option<i64>,
        ttl: Duration,
    ) -> Result<Lease> {
        self.campaign(holder, address, term, ttl, false).await
    }

    /// [`Store::acquire_lease`] for a controller starting at `address`: if
    /// the lease's holder is at that same address, it is this controller's
    /// previous process (the new one has bound its port, so the old one is
    /// gone), and its lease is taken at once, with a new term, instead of
    /// waiting for it to expire.
    pub async fn reclaim_lease(&self, holder: &str, address: &str, ttl: Duration) -> Result<Lease> {
        self.campaign(holder, address, None, ttl, true).await
    }

    async fn campaign(
        &self,
        holder: &str,
        address: &str,
        term: Option<i64>,
        ttl: Duration,
        reclaim: bool,
    ) -> Result<Lease> {
        if holder.is_empty() {
            return Err(StoreError::Invalid(
                "a lease holder id cannot be empty".into(),
            ));
        }
        let now = db_now(self.platform().backend);
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let mine = term.unwrap_or(-1);
        let sql = format!(
            "UPDATE controller_lease SET \
             term = CASE WHEN holder = $1 AND term = $2 THEN term ELSE term + 1 END, \
             acquired_at_ms = CASE WHEN holder = $3 AND term = $4 THEN acquired_at_ms ELSE {now} END, \
             holder = $5, address = $6, expires_at_ms = {now} + $7 \
             WHERE id = 1 AND ((holder = $8 AND term = $9) OR expires_at_ms <= {now} \
             OR ($10 = 1 AND address = $11)) \
             RETURNING holder, address, term, expires_at_ms - {now} AS expires_in_ms"
        );
        let what = || format!("failed to take or renew the controller lease for {holder}");
        let row = sqlx::query(&sql)
            .bind(holder)
            .bind(mine)
            .bind(holder)
            .bind(mine)
            .bind(holder)
            .bind(address)
            .bind(ttl_ms)
            .bind(holder)
            .bind(mine)
            .bind(i64::from(reclaim))
            .bind(address)
            .fetch_optional(&self.platform().pool)
            .await
            .context(what)?;
        match row {
            Some(row) => Ok(Lease::Held(lease_from_row(&row).context(what)?)),
            None => Ok(Lease::Other(self.lease().await?)),
        }
    }

    /// The lease as it is now.
    pub async fn lease(&self) -> Result<LeaseState> {
        let now = db_now(self.platform().backend);
        let sql = format!(
            "SELECT holder, address, term, expires_at_ms - {now} AS expires_in_ms \
             FROM controller_lease WHERE id = 1"
        );
        sqlx::query(&sql)
            .fetch_one(&self.platform().pool)
            .await
            .and_then(|r| lease_from_row(&r))
            .context(|| "failed to read the controller lease".to_string())
    }

    /// Gives the lease up at once (a controller that stops cleanly), so a
    /// standby need not wait for it to expire. Returns whether it was held.
    pub async fn release_lease(&self, holder: &str, term: i64) -> Result<bool> {
        let now = db_now(self.platform().backend);
        let sql = format!(
            "UPDATE controller_lease SET expires_at_ms = {now} \
             WHERE id = 1 AND holder = $1 AND term = $2"
        );
        let released = sqlx::query(&sql)
            .bind(holder)
            .bind(term)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to release the controller lease of {holder}"))?
            .rows_affected();
        Ok(released > 0)
    }

    /// Marks this store with the lease its controller holds: from now on it
    /// records a deployment only while that lease is current (`None`: no
    /// check, for an environment with a single controller, `runway up`).
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.inner.fence.lock().unwrap_or_else(|p| p.into_inner()) = fence;
    }

    pub(crate) fn fence(&self) -> Option<Fence> {
        self.inner
            .fence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Inside a recording transaction: fails unless `fence` is still the live
/// lease (see the module doc). Locks the lease row until `tx` ends.
pub(crate) async fn check_fence(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    fence: &Fence,
    what: &str,
) -> Result<()> {
    let now = db_now(backend);
    let sql = format!(
        "UPDATE controller_lease SET term = term \
         WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at_ms > {now}"
    );
    let held = sqlx::query(&sql)
        .bind(&fence.holder)
        .bind(fence.term)
        .execute(&mut **tx)
        .await
        .context(|| format!("failed to check the controller lease to {what}"))?
        .rows_affected();
    if held == 0 {
        return Err(StoreError::Conflict(format!(
            "this controller ({}) no longer holds the controller lease of term {}, so it \
             cannot {what}; the active controller decides deployments now: send the request \
             to it",
            fence.holder, fence.term
        )));
    }
    Ok(())
}
