//! Deployment plans: source and target environment, operations, property
//! values to set in the target, notes, two-step flag, status and status log.
//! The statuses and their transitions are LifeTime's; the plan engine (in
//! `runway-console`) drives them, this module only stores them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{ConsoleStore, flag};
use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::now_ms;

/// A plan's status (LifeTime's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanStatus {
    Saved,
    Running,
    NeedsUserIntervention,
    FinishedSuccessful,
    FinishedWithWarnings,
    FinishedWithErrors,
    Aborting,
    Aborted,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Saved => "saved",
            PlanStatus::Running => "running",
            PlanStatus::NeedsUserIntervention => "needs_user_intervention",
            PlanStatus::FinishedSuccessful => "finished_successful",
            PlanStatus::FinishedWithWarnings => "finished_with_warnings",
            PlanStatus::FinishedWithErrors => "finished_with_errors",
            PlanStatus::Aborting => "aborting",
            PlanStatus::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<PlanStatus> {
        Some(match s {
            "saved" => PlanStatus::Saved,
            "running" => PlanStatus::Running,
            "needs_user_intervention" => PlanStatus::NeedsUserIntervention,
            "finished_successful" => PlanStatus::FinishedSuccessful,
            "finished_with_warnings" => PlanStatus::FinishedWithWarnings,
            "finished_with_errors" => PlanStatus::FinishedWithErrors,
            "aborting" => PlanStatus::Aborting,
            "aborted" => PlanStatus::Aborted,
            _ => return None,
        })
    }

    /// Whether the plan holds its target (one such plan per target).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            PlanStatus::Running | PlanStatus::NeedsUserIntervention | PlanStatus::Aborting
        )
    }

    /// Whether the plan is over.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            PlanStatus::FinishedSuccessful
                | PlanStatus::FinishedWithWarnings
                | PlanStatus::FinishedWithErrors
                | PlanStatus::Aborted
        )
    }
}

/// One operation of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOperation {
    /// Deploy the version with this key (`rollback`: a downgrade is intended).
    Deploy { version_id: String, rollback: bool },
    /// Remove the application (by key) from the target's routing.
    Undeploy { application_id: String },
}

/// The type of a status-log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanLogKind {
    Info,
    Warning,
    Error,
}

impl PlanLogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanLogKind::Info => "info",
            PlanLogKind::Warning => "warning",
            PlanLogKind::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<PlanLogKind> {
        Some(match s {
            "info" => PlanLogKind::Info,
            "warning" => PlanLogKind::Warning,
            "error" => PlanLogKind::Error,
            _ => return None,
        })
    }
}

/// A plan as stored (operations, properties and log are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    pub id: String,
    pub source_environment_id: String,
    pub target_environment_id: String,
    pub notes: String,
    pub two_step: bool,
    pub allow_out_of_order: bool,
    pub status: PlanStatus,
    pub target_deployment_id: Option<i64>,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub updated_at_ms: i64,
}

/// A row of a plan's status log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLogRecord {
    pub id: i64,
    pub instant_ms: i64,
    pub kind: PlanLogKind,
    pub message: String,
}

/// What creating a plan records.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub id: String,
    pub source_environment_id: String,
    pub target_environment_id: String,
    pub notes: String,
    pub two_step: bool,
    pub allow_out_of_order: bool,
    pub operations: Vec<PlanOperation>,
    /// (application key, property, value; `None` unsets), sealed at rest.
    pub properties: Vec<(String, String, Option<String>)>,
    pub created_by: Option<String>,
}

const PLAN_COLUMNS: &str = "id, source_environment_id, target_environment_id, notes, two_step, \
     allow_out_of_order, status, target_deployment_id, created_at_ms, created_by, \
     started_at_ms, finished_at_ms, updated_at_ms";

fn plan_from_row(r: &AnyRow) -> sqlx::Result<PlanRecord> {
    let status: String = r.try_get("status")?;
    Ok(PlanRecord {
        id: r.try_get("id")?,
        source_environment_id: r.try_get("source_environment_id")?,
        target_environment_id: r.try_get("target_environment_id")?,
        notes: r.try_get("notes")?,
        two_step: r.try_get::<i64, _>("two_step")? != 0,
        allow_out_of_order: r.try_get::<i64, _>("allow_out_of_order")? != 0,
        status: PlanStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown plan status {status:?}").into()))?,
        target_deployment_id: r.try_get("target_deployment_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        created_by: r.try_get("created_by")?,
        started_at_ms: r.try_get("started_at_ms")?,
        finished_at_ms: r.try_get("finished_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

/// The associated data a plan's property value is sealed with.
fn plan_property_context(plan: &str, app: &str, key: &str) -> Vec<u8> {
    let mut context = b"runway plan property\0".to_vec();
    for part in [plan, app, key] {
        context.extend_from_slice(part.as_bytes());
        context.push(0);
    }
    context
}

impl ConsoleStore {
    /// Records a plan in status `saved`, with its operations and sealed
    /// property values, in one transaction.
    pub async fn create_plan(&self, new: &NewPlan) -> Result<PlanRecord> {
        let what = || "failed to create a deployment plan".to_string();
        let key = self.key()?;
        let now = now_ms();
        let mut tx = self.catalog().begin_write("create a plan").await?;
        sqlx::query(
            "INSERT INTO deployment_plans (id, source_environment_id, target_environment_id, \
             notes, two_step, allow_out_of_order, status, created_at_ms, created_by, \
             updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, 'saved', $7, $8, $7)",
        )
        .bind(&new.id)
        .bind(&new.source_environment_id)
        .bind(&new.target_environment_id)
        .bind(&new.notes)
        .bind(flag(new.two_step))
        .bind(flag(new.allow_out_of_order))
        .bind(now)
        .bind(&new.created_by)
        .execute(&mut *tx)
        .await
        .context(what)?;
        for (position, op) in new.operations.iter().enumerate() {
            let (kind, app, version, rollback) = match op {
                PlanOperation::Deploy {
                    version_id,
                    rollback,
                } => {
                    let row = sqlx::query("SELECT application_id FROM app_versions WHERE id = $1")
                        .bind(version_id)
                        .fetch_optional(&mut *tx)
                        .await
                        .context(what)?;
                    let Some(row) = row else {
                        tx.rollback().await.context(what)?;
                        return Err(StoreError::NotFound(format!(
                            "no application version with key {version_id}"
                        )));
                    };
                    let app: String = row.try_get("application_id").context(what)?;
                    ("deploy", app, Some(version_id.clone()), *rollback)
                }
                PlanOperation::Undeploy { application_id } => {
                    ("undeploy", application_id.clone(), None, false)
                }
            };
            let inserted = sqlx::query(
                "INSERT INTO plan_operations (plan_id, position, kind, application_id, \
                 version_id, rollback) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&new.id)
            .bind(position as i64)
            .bind(kind)
            .bind(&app)
            .bind(&version)
            .bind(flag(rollback))
            .execute(&mut *tx)
            .await;
            if let Err(e) = inserted {
                tx.rollback().await.context(what)?;
                return Err(if is_unique_violation(&e) {
                    StoreError::Conflict("a plan has at most one operation per application".into())
                } else {
                    StoreError::Query {
                        context: what(),
                        source: e,
                    }
                });
            }
        }
        for (app, name, value) in &new.properties {
            let sealed = value
                .as_ref()
                .map(|v| key.seal(&plan_property_context(&new.id, app, name), v));
            sqlx::query(
                "INSERT INTO plan_properties (plan_id, application_id, key, value_sealed, key_id) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&new.id)
            .bind(app)
            .bind(name)
            .bind(&sealed)
            .bind(sealed.as_ref().map(|_| key.id()))
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        tx.commit().await.context(what)?;
        self.plan(&new.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("plan {} vanished", new.id)))
    }

    /// The plan with this key.
    pub async fn plan(&self, key: &str) -> Result<Option<PlanRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM deployment_plans WHERE id = $1"
        ))
        .bind(key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read plan {key}"))?;
        row.as_ref()
            .map(plan_from_row)
            .transpose()
            .context(|| "failed to decode a plan".to_string())
    }

    /// Plans created within `[min_ms, max_ms]` (either bound optional),
    /// optionally to one target, newest first.
    pub async fn plans(
        &self,
        min_ms: Option<i64>,
        max_ms: Option<i64>,
        target_environment_id: Option<&str>,
    ) -> Result<Vec<PlanRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM deployment_plans \
             WHERE created_at_ms >= $1 AND created_at_ms <= $2 \
             AND ($3 = '' OR target_environment_id = $3) \
             ORDER BY created_at_ms DESC, id"
        ))
        .bind(min_ms.unwrap_or(i64::MIN))
        .bind(max_ms.unwrap_or(i64::MAX))
        .bind(target_environment_id.unwrap_or(""))
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list plans".to_string())?;
        rows.iter()
            .map(plan_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode plans".to_string())
    }

    /// A plan's operations, in order.
    pub async fn plan_operations(&self, plan_id: &str) -> Result<Vec<PlanOperation>> {
        let rows = sqlx::query(
            "SELECT kind, application_id, version_id, rollback FROM plan_operations \
             WHERE plan_id = $1 ORDER BY position",
        )
        .bind(plan_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| format!("failed to read the operations of plan {plan_id}"))?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(if kind == "deploy" {
                    PlanOperation::Deploy {
                        version_id: r.try_get::<Option<String>, _>("version_id")?.ok_or_else(
                            || sqlx::Error::Decode("a deploy operation without a version".into()),
                        )?,
                        rollback: r.try_get::<i64, _>("rollback")? != 0,
                    }
                } else {
                    PlanOperation::Undeploy {
                        application_id: r.try_get("application_id")?,
                    }
                })
            })
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode plan operations".to_string())
    }

    /// A plan's property values, unsealed: (application key, property, value).
    pub async fn plan_properties(
        &self,
        plan_id: &str,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        let key = self.key()?;
        let rows = sqlx::query(
            "SELECT application_id, key, value_sealed FROM plan_properties \
             WHERE plan_id = $1 ORDER BY application_id, key",
        )
        .bind(plan_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| format!("failed to read the properties of plan {plan_id}"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let decode = || "failed to decode plan properties".to_string();
            let app: String = r.try_get("application_id").context(decode)?;
            let name: String = r.try_get("key").context(decode)?;
            let sealed: Option<String> = r.try_get("value_sealed").context(decode)?;
            let value = match sealed {
                None => None,
                Some(sealed) => Some(
                    key.open(&plan_property_context(plan_id, &app, &name), &sealed)
                        .ok_or_else(|| StoreError::SecretsKey {
                            path: key.path().to_path_buf(),
                            problem: format!(
                                "does not open property {name:?} of plan {plan_id}; restore the \
                                 console's key from a backup"
                            ),
                        })?,
                ),
            };
            out.push((app, name, value));
        }
        Ok(out)
    }

    /// Moves a plan from `from` to `to` (compare-and-set), stamping start or
    /// finish. `false` if the plan was not in `from`. A second active plan
    /// on the same target is a [`StoreError::Conflict`] naming the running one.
    pub async fn set_plan_status(
        &self,
        plan_id: &str,
        from: PlanStatus,
        to: PlanStatus,
        target_deployment_id: Option<i64>,
    ) -> Result<bool> {
        let now = now_ms();
        let started = (to == PlanStatus::Running && from == PlanStatus::Saved).then_some(now);
        let finished = to.is_finished().then_some(now);
        let result = sqlx::query(
            "UPDATE deployment_plans SET status = $1, updated_at_ms = $2, \
             started_at_ms = COALESCE($3, started_at_ms), \
             finished_at_ms = COALESCE($4, finished_at_ms), \
             target_deployment_id = COALESCE($5, target_deployment_id) \
             WHERE id = $6 AND status = $7",
        )
        .bind(to.as_str())
        .bind(now)
        .bind(started)
        .bind(finished)
        .bind(target_deployment_id)
        .bind(plan_id)
        .bind(from.as_str())
        .execute(&self.catalog().pool)
        .await;
        match result {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_unique_violation(&e) => {
                let running = sqlx::query(
                    "SELECT b.id FROM deployment_plans a JOIN deployment_plans b \
                     ON b.target_environment_id = a.target_environment_id \
                     WHERE a.id = $1 AND b.id <> $1 \
                     AND b.status IN ('running', 'needs_user_intervention', 'aborting')",
                )
                .bind(plan_id)
                .fetch_optional(&self.catalog().pool)
                .await
                .context(|| "failed to find the running plan".to_string())?
                .map(|r| r.try_get::<String, _>("id"))
                .transpose()
                .context(|| "failed to decode the running plan".to_string())?;
                Err(StoreError::Conflict(format!(
                    "plan {} is already running on this target; wait for it, or abort it",
                    running.unwrap_or_else(|| "(unknown)".into())
                )))
            }
            Err(e) => Err(e).context(|| format!("failed to update plan {plan_id}")),
        }
    }

    /// Appends a row to a plan's status log.
    pub async fn append_plan_log(
        &self,
        plan_id: &str,
        kind: PlanLogKind,
        message: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO plan_log (plan_id, instant_ms, kind, message) VALUES ($1, $2, $3, $4)",
        )
        .bind(plan_id)
        .bind(now_ms())
        .bind(kind.as_str())
        .bind(message)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to append to the log of plan {plan_id}"))?;
        Ok(())
    }

    /// A plan's status log rows after `after_id`, oldest first.
    pub async fn plan_log(&self, plan_id: &str, after_id: i64) -> Result<Vec<PlanLogRecord>> {
        let rows = sqlx::query(
            "SELECT id, instant_ms, kind, message FROM plan_log \
             WHERE plan_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(plan_id)
        .bind(after_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| format!("failed to read the log of plan {plan_id}"))?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(PlanLogRecord {
                    id: r.try_get("id")?,
                    instant_ms: r.try_get("instant_ms")?,
                    kind: PlanLogKind::parse(&kind).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown log kind {kind:?}").into())
                    })?,
                    message: r.try_get("message")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode a plan log".to_string())
    }

    /// Deletes a plan that is not active (its operations, properties and log
    /// go with it). `false` if there is no such plan; an active plan is a
    /// [`StoreError::Conflict`].
    pub async fn delete_plan(&self, plan_id: &str) -> Result<bool> {
        let what = || format!("failed to delete plan {plan_id}");
        let mut tx = self.catalog().begin_write("delete a plan").await?;
        let row = sqlx::query("SELECT status FROM deployment_plans WHERE id = $1")
            .bind(plan_id)
            .fetch_optional(&mut *tx)
            .await
            .context(what)?;
        let Some(row) = row else {
            tx.rollback().await.context(what)?;
            return Ok(false);
        };
        let status: String = row.try_get("status").context(what)?;
        if PlanStatus::parse(&status).is_some_and(PlanStatus::is_active) {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Conflict(format!(
                "plan {plan_id} is {status}: a plan that holds its target cannot be deleted; \
                 abort it first"
            )));
        }
        for sql in [
            "DELETE FROM plan_log WHERE plan_id = $1",
            "DELETE FROM plan_properties WHERE plan_id = $1",
            "DELETE FROM plan_operations WHERE plan_id = $1",
            "DELETE FROM deployment_plans WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(plan_id)
                .execute(&mut *tx)
                .await
                .context(what)?;
        }
        tx.commit().await.context(what)?;
        Ok(true)
    }
}
