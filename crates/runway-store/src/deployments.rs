//! Deployments and the environment's committed generation (platform catalog).
//!
//! A deployment row is created `running` when the controller starts one, with
//! one `deployment_operations` row per app it switches. It ends `succeeded`
//! (in the same transaction that records the new running versions, property
//! values and generation), `failed` (catalog otherwise untouched), or — when it
//! was only staged (`prepared`) — `aborted`. At most one deployment is
//! `running` or `prepared` at a time ([`Store::begin_deployment_of`] refuses a
//! second). Each registered front-end's part is kept in typed rows
//! (`deployment_frontends`), never as a document re-parsed later.

use runway_api::fleet::{FrontendProgress, FrontendProgressState};
use runway_api::v1::{DeploymentOperation, DeploymentStatus, OperationKind};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Context, Result, StoreError};
use crate::zones::ZoneChanges;
use crate::{Store, now_ms};

/// A property set (`Some`) or unset (`None`).
pub type PropertyChange = (String, Option<String>);

/// One deployment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub id: i64,
    /// The first operation's app, version and kind.
    pub app: String,
    pub version: String,
    pub kind: OperationKind,
    pub status: DeploymentStatus,
    /// Every app it switches, in request order.
    pub operations: Vec<DeploymentOperation>,
    pub error: Option<String>,
    /// The generation it committed (succeeded), staged (prepared) or tried.
    pub generation: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// While prepared: when it is aborted unless committed.
    pub expires_at_ms: Option<i64>,
    /// Each registered front-end's part ([`Store::set_deployment_progress`]).
    pub frontends: Vec<FrontendProgress>,
}

/// What [`Store::begin_deployment_of`] found instead of starting one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginDeployment {
    Started(i64),
    /// Deployment `id` is running or prepared.
    Busy {
        id: i64,
        status: DeploymentStatus,
    },
}

const COLUMNS: &str = "id, app, version, kind, status, error, generation, started_at_ms, \
                       finished_at_ms, expires_at_ms";

fn decode_status(s: &str) -> sqlx::Result<DeploymentStatus> {
    DeploymentStatus::parse(s).ok_or_else(|| bad_column("deployments.status", s))
}

fn decode_kind(s: &str) -> sqlx::Result<OperationKind> {
    OperationKind::parse(s).ok_or_else(|| bad_column("kind", s))
}

pub(crate) fn bad_column(column: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown value {value:?} in column {column}").into())
}

fn deployment_from_row(r: &AnyRow) -> sqlx::Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        id: r.try_get("id")?,
        app: r.try_get("app")?,
        version: r.try_get("version")?,
        kind: decode_kind(&r.try_get::<String, _>("kind")?)?,
        status: decode_status(&r.try_get::<String, _>("status")?)?,
        operations: Vec::new(),
        error: r.try_get("error")?,
        generation: r.try_get("generation")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        frontends: Vec::new(),
    })
}

impl Store {
    /// The committed generation of the environment's routing table (0 before
    /// the first deployment).
    pub async fn generation(&self) -> Result<i64> {
        sqlx::query("SELECT generation FROM environment WHERE id = 1")
            .fetch_one(&self.platform().pool)
            .await
            .and_then(|r| r.try_get("generation"))
            .context(|| "failed to read the committed generation".to_string())
    }

    /// Records the start of a one-app deployment (status `running`) and
    /// returns its id; refused while another is running or prepared.
    pub async fn begin_deployment(
        &self,
        app: &str,
        version: &str,
        kind: OperationKind,
    ) -> Result<i64> {
        let operation = DeploymentOperation {
            app: app.to_string(),
            kind,
            version: Some(version.to_string()),
            digest: None,
        };
        match self.begin_deployment_of(&[operation]).await? {
            BeginDeployment::Started(id) => Ok(id),
            BeginDeployment::Busy { id, status } => Err(StoreError::Conflict(format!(
                "deployment {id} is {status}; wait for it to end (or commit or abort it)"
            ))),
        }
    }

    /// Records the start of a deployment of `operations` (status `running`,
    /// first operation first) in one transaction, unless a deployment is
    /// running or prepared: then nothing is written and that one is returned.
    pub async fn begin_deployment_of(
        &self,
        operations: &[DeploymentOperation],
    ) -> Result<BeginDeployment> {
        let Some(first) = operations.first() else {
            return Err(StoreError::Invalid(
                "a deployment needs at least one operation".into(),
            ));
        };
        let what = || {
            format!(
                "failed to record the start of a deployment of {}",
                first.app
            )
        };
        let mut tx = self
            .platform()
            .begin_write(&format!("begin a deployment of {}", first.app))
            .await?;
        let busy = sqlx::query(
            "SELECT id, status FROM deployments WHERE status IN ('running', 'prepared') \
             ORDER BY id LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .context(what)?;
        if let Some(row) = busy {
            let id: i64 = row.try_get("id").context(what)?;
            let status: String = row.try_get("status").context(what)?;
            tx.rollback().await.context(what)?;
            return Ok(BeginDeployment::Busy {
                id,
                status: decode_status(&status).context(what)?,
            });
        }
        let id: i64 = sqlx::query(
            "INSERT INTO deployments (app, version, kind, status, started_at_ms) \
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
        )
        .bind(&first.app)
        .bind(first.version.as_deref().unwrap_or(""))
        .bind(first.kind.as_str())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .and_then(|r| r.try_get("id"))
        .context(what)?;
        for (position, op) in operations.iter().enumerate() {
            sqlx::query(
                "INSERT INTO deployment_operations \
                 (deployment_id, position, app, kind, version, digest) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(&op.app)
            .bind(op.kind.as_str())
            .bind(op.version.as_deref())
            .bind(op.digest.as_deref())
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        tx.commit().await.context(what)?;
        Ok(BeginDeployment::Started(id))
    }

    /// The deployment running or prepared now, if any.
    pub async fn active_deployment(&self) -> Result<Option<(i64, DeploymentStatus)>> {
        let what = || "failed to look for a running deployment".to_string();
        let row = sqlx::query(
            "SELECT id, status FROM deployments WHERE status IN ('running', 'prepared') \
             ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.platform().pool)
        .await
        .context(what)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let id: i64 = row.try_get("id").context(what)?;
                let status: String = row.try_get("status").context(what)?;
                Ok(Some((id, decode_status(&status).context(what)?)))
            }
        }
    }

    /// Completes deployment `id` in ONE transaction: every app in `running`
    /// gets its new running version (`None` = undeployed), the committed
    /// generation becomes `generation`, and the deployment is marked
    /// `succeeded`. If anything fails (unknown version, deployment not
    /// running), nothing changes.
    pub async fn commit_deployment(
        &self,
        id: i64,
        generation: i64,
        running: &[(String, Option<String>)],
    ) -> Result<()> {
        self.commit_deployment_with(id, generation, running, &[])
            .await
    }

    /// [`Store::commit_deployment`], also applying property changes of the
    /// apps in `properties` in the same transaction. Every zone's table
    /// counts as changed.
    pub async fn commit_deployment_with(
        &self,
        id: i64,
        generation: i64,
        running: &[(String, Option<String>)],
        properties: &[(String, Vec<PropertyChange>)],
    ) -> Result<()> {
        self.commit_deployment_in_zones(
            id,
            generation,
            running,
            properties,
            &ZoneChanges::default(),
        )
        .await
    }

    /// [`Store::commit_deployment_with`], also moving apps between zones and
    /// setting the generation of the zones whose table changed, in the same
    /// transaction.
    pub async fn commit_deployment_in_zones(
        &self,
        id: i64,
        generation: i64,
        running: &[(String, Option<String>)],
        properties: &[(String, Vec<PropertyChange>)],
        zones: &ZoneChanges,
    ) -> Result<()> {
        let what = || format!("failed to commit deployment {id}");
        let now = now_ms();
        let mut tx = self
            .platform()
            .begin_write(&format!("commit deployment {id}"))
            .await?;
        if let Some(fence) = self.fence() {
            let checked = crate::lease::check_fence(
                &mut tx,
                self.platform().backend,
                &fence,
                &format!("record deployment {id}"),
            )
            .await;
            if let Err(e) = checked {
                tx.rollback().await.context(what)?;
                return Err(e);
            }
        }
        let marked = sqlx::query(
            "UPDATE deployments SET status = 'succeeded', finished_at_ms = $1, generation = $2, \
             expires_at_ms = NULL WHERE id = $3 AND status = 'running'",
        )
        .bind(now)
        .bind(generation)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if marked == 0 {
            let status = deployment_status(&mut tx, id).await.context(what)?;
            tx.rollback().await.context(what)?;
            return Err(match status {
                None => StoreError::NotFound(format!("deployment {id} does not exist")),
                Some(s) => {
                    StoreError::Conflict(format!("deployment {id} cannot be committed: it is {s}"))
                }
            });
        }
        for (app, version) in running {
            match version {
                Some(version) => {
                    let updated = sqlx::query(
                        "UPDATE apps SET running_version = $1, \
                         running_digest = (SELECT digest FROM versions WHERE app = $2 AND version = $3), \
                         deployed_at_ms = $4 \
                         WHERE name = $5 AND EXISTS \
                         (SELECT 1 FROM versions WHERE app = $6 AND version = $7)",
                    )
                    .bind(version)
                    .bind(app)
                    .bind(version)
                    .bind(now)
                    .bind(app)
                    .bind(app)
                    .bind(version)
                    .execute(&mut *tx)
                    .await
                    .context(what)?
                    .rows_affected();
                    if updated == 0 {
                        tx.rollback().await.context(what)?;
                        return Err(StoreError::NotFound(format!(
                            "cannot commit deployment {id}: app {app} has no version {version}"
                        )));
                    }
                }
                None => {
                    sqlx::query(
                        "UPDATE apps SET running_version = NULL, running_digest = NULL, \
                         deployed_at_ms = NULL WHERE name = $1",
                    )
                    .bind(app)
                    .execute(&mut *tx)
                    .await
                    .context(what)?;
                }
            }
        }
        for (app, changes) in properties {
            crate::properties::write_properties(&mut tx, app, changes, self.secrets_key()).await?;
        }
        if let Err(e) = crate::zones::write_zone_changes(&mut tx, id, generation, zones).await {
            tx.rollback().await.context(what)?;
            return Err(e);
        }
        sqlx::query("UPDATE environment SET generation = $1 WHERE id = 1")
            .bind(generation)
            .execute(&mut *tx)
            .await
            .context(what)?;
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Marks deployment `id` failed with `error`. Running versions and the
    /// generation are not touched.
    pub async fn fail_deployment(&self, id: i64, error: &str) -> Result<()> {
        self.end_deployment(id, &[DeploymentStatus::Running], "failed", error)
            .await
    }

    /// Marks a running deployment `prepared` (staged everywhere, nothing
    /// switched) at `generation`, to be aborted at `expires_at_ms` unless
    /// committed.
    pub async fn prepare_deployment(
        &self,
        id: i64,
        generation: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        self.move_deployment(
            id,
            DeploymentStatus::Running,
            DeploymentStatus::Prepared,
            Some((generation, expires_at_ms)),
        )
        .await
    }

    /// Takes prepared deployment `id` back to `running` for its commit (which
    /// [`Store::commit_deployment_with`] then records). A controller that
    /// stops before the record leaves it running, so the next start marks it
    /// failed: nothing was switched.
    pub async fn resume_deployment(&self, id: i64) -> Result<()> {
        self.move_deployment(
            id,
            DeploymentStatus::Prepared,
            DeploymentStatus::Running,
            None,
        )
        .await
    }

    /// Marks a prepared (or running) deployment `aborted` with `error`:
    /// nothing was switched.
    pub async fn abort_deployment(&self, id: i64, error: &str) -> Result<()> {
        self.end_deployment(
            id,
            &[DeploymentStatus::Prepared, DeploymentStatus::Running],
            "aborted",
            error,
        )
        .await
    }

    async fn move_deployment(
        &self,
        id: i64,
        from: DeploymentStatus,
        to: DeploymentStatus,
        prepared: Option<(i64, i64)>,
    ) -> Result<()> {
        let what = || format!("failed to mark deployment {id} {to}");
        let mut tx = self
            .platform()
            .begin_write(&format!("mark deployment {id} {to}"))
            .await?;
        let (generation, expires) = prepared.unzip();
        let marked = sqlx::query(
            "UPDATE deployments SET status = $1, expires_at_ms = $2, \
             generation = COALESCE($3, generation) WHERE id = $4 AND status = $5",
        )
        .bind(to.as_str())
        .bind(expires)
        .bind(generation)
        .bind(id)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if marked == 0 {
            let status = deployment_status(&mut tx, id).await.context(what)?;
            tx.rollback().await.context(what)?;
            return Err(match status {
                None => StoreError::NotFound(format!("deployment {id} does not exist")),
                Some(s) => StoreError::Conflict(format!(
                    "deployment {id} cannot be marked {to}: it is {s}, not {from}"
                )),
            });
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    async fn end_deployment(
        &self,
        id: i64,
        from: &[DeploymentStatus],
        to: &str,
        error: &str,
    ) -> Result<()> {
        let what = || format!("failed to record that deployment {id} {to}");
        let mut tx = self
            .platform()
            .begin_write(&format!("mark deployment {id} {to}"))
            .await?;
        let current = deployment_status(&mut tx, id).await.context(what)?;
        let Some(current) = current else {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!(
                "deployment {id} does not exist"
            )));
        };
        if !from.contains(&current) {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Conflict(format!(
                "deployment {id} cannot be marked {to}: it is {current}"
            )));
        }
        sqlx::query(
            "UPDATE deployments SET status = $1, error = $2, finished_at_ms = $3, \
             expires_at_ms = NULL WHERE id = $4",
        )
        .bind(to)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Deployment `id`, with its operations and front-end progress.
    pub async fn deployment(&self, id: i64) -> Result<Option<DeploymentRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM deployments WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.platform().pool)
            .await
            .context(|| format!("failed to read deployment {id}"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let record =
            deployment_from_row(&row).context(|| format!("failed to decode deployment {id}"))?;
        let mut records = self.with_details(vec![record]).await?;
        Ok(records.pop())
    }

    /// Deployments, newest first, optionally only those that switched `app`;
    /// at most `limit`.
    pub async fn deployments(
        &self,
        app: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeploymentRecord>> {
        let limit = limit.max(0);
        let rows = match app {
            Some(app) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM deployments WHERE id IN \
                     (SELECT deployment_id FROM deployment_operations WHERE app = $1) \
                     ORDER BY id DESC LIMIT $2"
                ))
                .bind(app)
                .bind(limit)
                .fetch_all(&self.platform().pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM deployments ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.platform().pool)
                .await
            }
        }
        .context(|| "failed to list deployments".to_string())?;
        let records = rows
            .iter()
            .map(deployment_from_row)
            .collect::<sqlx::Result<Vec<_>>>()
            .context(|| "failed to decode deployments".to_string())?;
        self.with_details(records).await
    }

    /// Fills in the operations and front-end progress of `records`.
    async fn with_details(
        &self,
        mut records: Vec<DeploymentRecord>,
    ) -> Result<Vec<DeploymentRecord>> {
        let (Some(low), Some(high)) = (
            records.iter().map(|r| r.id).min(),
            records.iter().map(|r| r.id).max(),
        ) else {
            return Ok(records);
        };
        let what = || format!("failed to read the details of deployments {low} to {high}");
        let operations = sqlx::query(
            "SELECT deployment_id, app, kind, version, digest FROM deployment_operations \
             WHERE deployment_id BETWEEN $1 AND $2 ORDER BY deployment_id, position",
        )
        .bind(low)
        .bind(high)
        .fetch_all(&self.platform().pool)
        .await
        .context(what)?;
        for row in &operations {
            let id: i64 = row.try_get("deployment_id").context(what)?;
            let Some(record) = records.iter_mut().find(|r| r.id == id) else {
                continue;
            };
            let kind: String = row.try_get("kind").context(what)?;
            record.operations.push(DeploymentOperation {
                app: row.try_get("app").context(what)?,
                kind: decode_kind(&kind).context(what)?,
                version: row.try_get("version").context(what)?,
                digest: row.try_get("digest").context(what)?,
            });
        }
        let progress = sqlx::query(
            "SELECT deployment_id, frontend, state, fetched_bytes, elapsed_ms, error \
             FROM deployment_frontends WHERE deployment_id BETWEEN $1 AND $2 \
             ORDER BY deployment_id, position",
        )
        .bind(low)
        .bind(high)
        .fetch_all(&self.platform().pool)
        .await
        .context(what)?;
        for row in &progress {
            let id: i64 = row.try_get("deployment_id").context(what)?;
            let Some(record) = records.iter_mut().find(|r| r.id == id) else {
                continue;
            };
            let state: String = row.try_get("state").context(what)?;
            let state = FrontendProgressState::parse(&state)
                .ok_or_else(|| bad_column("deployment_frontends.state", &state))
                .context(what)?;
            record.frontends.push(FrontendProgress {
                frontend: row.try_get("frontend").context(what)?,
                state,
                fetched_bytes: row.try_get::<i64, _>("fetched_bytes").context(what)?.max(0) as u64,
                elapsed_ms: row.try_get::<i64, _>("elapsed_ms").context(what)?.max(0) as u64,
                error: row.try_get("error").context(what)?,
            });
        }
        Ok(records)
    }

    /// Gives deployment `id` the next generation number: one above every
    /// generation committed or attempted before, so a number is never reused
    /// (a front-end can then never mistake a failed attempt's table for a
    /// later one's). Call under the environment's deployment lock.
    pub async fn claim_generation(&self, id: i64) -> Result<i64> {
        sqlx::query(
            "UPDATE deployments SET generation = 1 + (SELECT MAX(g) FROM \
             (SELECT generation AS g FROM environment WHERE id = 1 \
              UNION ALL SELECT COALESCE(MAX(generation), 0) FROM deployments) AS used) \
             WHERE id = $1 RETURNING generation",
        )
        .bind(id)
        .fetch_one(&self.platform().pool)
        .await
        .and_then(|r| r.try_get("generation"))
        .context(|| format!("failed to give deployment {id} a generation"))
    }

    /// Replaces the per-front-end progress of deployment `id`, in one transaction.
    pub async fn set_deployment_progress(
        &self,
        id: i64,
        frontends: &[FrontendProgress],
    ) -> Result<()> {
        let what = || format!("failed to record the progress of deployment {id}");
        let mut tx = self
            .platform()
            .begin_write(&format!("record the progress of deployment {id}"))
            .await?;
        sqlx::query("DELETE FROM deployment_frontends WHERE deployment_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context(what)?;
        for (position, p) in frontends.iter().enumerate() {
            sqlx::query(
                "INSERT INTO deployment_frontends \
                 (deployment_id, position, frontend, state, fetched_bytes, elapsed_ms, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(position as i64)
            .bind(&p.frontend)
            .bind(p.state.as_str())
            .bind(i64::try_from(p.fetched_bytes).unwrap_or(i64::MAX))
            .bind(i64::try_from(p.elapsed_ms).unwrap_or(i64::MAX))
            .bind(p.error.as_deref())
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Marks every `running` deployment `failed` with `reason` (call at startup:
    /// nothing can still be running then). Returns how many were marked.
    pub async fn fail_unfinished_deployments(&self, reason: &str) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE deployments SET status = 'failed', error = $1, finished_at_ms = $2 \
             WHERE status = 'running'",
        )
        .bind(reason)
        .bind(now_ms())
        .execute(&self.platform().pool)
        .await
        .context(|| "failed to mark unfinished deployments failed".to_string())?;
        Ok(r.rows_affected())
    }

    /// Marks every `prepared` deployment `aborted` with `reason` (call at
    /// startup: their staged tables died with the previous process, and
    /// nothing was switched). Returns their ids.
    pub async fn abort_prepared_deployments(&self, reason: &str) -> Result<Vec<i64>> {
        let what = || "failed to abort prepared deployments".to_string();
        let rows = sqlx::query(
            "UPDATE deployments SET status = 'aborted', error = $1, finished_at_ms = $2, \
             expires_at_ms = NULL WHERE status = 'prepared' RETURNING id",
        )
        .bind(reason)
        .bind(now_ms())
        .fetch_all(&self.platform().pool)
        .await
        .context(what)?;
        rows.iter()
            .map(|r| r.try_get("id"))
            .collect::<sqlx::Result<_>>()
            .context(what)
    }
}

/// The status of an existing deployment.
async fn deployment_status(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
) -> sqlx::Result<Option<DeploymentStatus>> {
    let status: Option<String> = sqlx::query("SELECT status FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("status"))
        .transpose()?;
    status.as_deref().map(decode_status).transpose()
}
