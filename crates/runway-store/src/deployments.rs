//! Deployments and the environment's committed generation (platform catalog).
//!
//! A deployment row is created `running` when the controller starts one, and
//! ends `succeeded` (in the same transaction that records the new running
//! versions and generation) or `failed` (catalog otherwise untouched).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Context, Result, StoreError};
use crate::{Store, now_ms};

/// A property set (`Some`) or unset (`None`).
pub type PropertyChange = (String, Option<String>);

/// Deployment kinds accepted by [`Store::begin_deployment`].
pub(crate) const DEPLOYMENT_KINDS: [&str; 3] = ["deploy", "config", "undeploy"];

/// One deployment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub id: i64,
    pub app: String,
    pub version: String,
    /// `deploy`, `config` or `undeploy`.
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub error: Option<String>,
    /// The generation it committed (succeeded), or tried (failed).
    pub generation: Option<i64>,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// Per-front-end progress, JSON written by the controller
    /// ([`Store::set_deployment_progress`]).
    pub frontends: Option<String>,
}

fn deployment_from_row(r: &AnyRow) -> sqlx::Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        id: r.try_get("id")?,
        app: r.try_get("app")?,
        version: r.try_get("version")?,
        kind: r.try_get("kind")?,
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        generation: r.try_get("generation")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
        frontends: r.try_get("frontends")?,
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

    /// Records the start of a deployment (status `running`) and returns its id.
    /// `kind` is one of `deploy`, `config`, `undeploy`.
    pub async fn begin_deployment(&self, app: &str, version: &str, kind: &str) -> Result<i64> {
        if !DEPLOYMENT_KINDS.contains(&kind) {
            return Err(StoreError::Invalid(format!(
                "unknown deployment kind {kind:?} (expected one of {})",
                DEPLOYMENT_KINDS.join(", ")
            )));
        }
        sqlx::query(
            "INSERT INTO deployments (app, version, kind, status, started_at_ms) \
             VALUES ($1, $2, $3, 'running', $4) RETURNING id",
        )
        .bind(app)
        .bind(version)
        .bind(kind)
        .bind(now_ms())
        .fetch_one(&self.platform().pool)
        .await
        .and_then(|r| r.try_get("id"))
        .context(|| format!("failed to record the start of {kind} of {app} {version}"))
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
        self.commit_deployment_with(id, generation, running, None)
            .await
    }

    /// [`Store::commit_deployment`], also applying property changes of one
    /// app in the same transaction (a configuration deployment).
    pub async fn commit_deployment_with(
        &self,
        id: i64,
        generation: i64,
        running: &[(String, Option<String>)],
        properties: Option<(&str, &[PropertyChange])>,
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
            "UPDATE deployments SET status = 'succeeded', finished_at_ms = $1, generation = $2 \
             WHERE id = $3 AND status = 'running'",
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
                Some(s) => StoreError::Conflict(format!(
                    "deployment {id} cannot be committed: it already {s}"
                )),
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
        if let Some((app, changes)) = properties {
            crate::properties::write_properties(&mut tx, app, changes, self.secrets_key()).await?;
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
        let what = || format!("failed to record failure of deployment {id}");
        let mut tx = self
            .platform()
            .begin_write(&format!("fail deployment {id}"))
            .await?;
        let marked = sqlx::query(
            "UPDATE deployments SET status = 'failed', error = $1, finished_at_ms = $2 \
             WHERE id = $3 AND status = 'running'",
        )
        .bind(error)
        .bind(now_ms())
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
                Some(s) => StoreError::Conflict(format!(
                    "deployment {id} cannot be marked failed: it already {s}"
                )),
            });
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Deployments, newest first, optionally only those of `app`; at most `limit`.
    pub async fn deployments(
        &self,
        app: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeploymentRecord>> {
        let columns = "id, app, version, kind, status, error, generation, started_at_ms, \
                       finished_at_ms, frontends";
        let limit = limit.max(0);
        let rows = match app {
            Some(app) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM deployments WHERE app = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(app)
                .bind(limit)
                .fetch_all(&self.platform().pool)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM deployments ORDER BY id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.platform().pool)
                .await
            }
        }
        .context(|| "failed to list deployments".to_string())?;
        rows.iter()
            .map(deployment_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode deployments".to_string())
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

    /// Replaces the per-front-end progress of deployment `id` (a JSON document
    /// the controller owns).
    pub async fn set_deployment_progress(&self, id: i64, frontends_json: &str) -> Result<()> {
        sqlx::query("UPDATE deployments SET frontends = $1 WHERE id = $2")
            .bind(frontends_json)
            .bind(id)
            .execute(&self.platform().pool)
            .await
            .context(|| format!("failed to record the progress of deployment {id}"))?;
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
}

/// `Some("succeeded")`/`Some("failed")`/… for an existing deployment.
async fn deployment_status(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query("SELECT status FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("status"))
        .transpose()
}
