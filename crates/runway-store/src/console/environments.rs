//! Registered environments, pipelines, and the last health poll of each
//! environment.

use runway_api::v1::FrontendState;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{ConsoleStore, credential_context, flag, new_key};
use crate::deployments::bad_column;
use crate::error::{Context, Result, StoreError, is_unique_violation};
use crate::now_ms;

/// A pipeline: a named, ordered list of environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
}

/// A registered environment (never its credential: see
/// [`ConsoleStore::environment_credential`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRecord {
    pub id: String,
    pub name: String,
    /// Base URL of the environment's API (its balancer in a farm).
    pub address: String,
    pub pipeline_id: Option<String>,
    pub pipeline: Option<String>,
    /// 1-based place in its pipeline.
    pub position: Option<i64>,
    pub allow_insecure: bool,
    /// Plans to this environment stop after prepare.
    pub two_step: bool,
    /// Name of the console's token on the environment (`console:<console id>`).
    pub credential_name: String,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
}

/// What `runway env add` records.
#[derive(Debug, Clone)]
pub struct NewEnvironment {
    /// The key, chosen by the caller (it names the credential it minted).
    pub id: String,
    pub name: String,
    pub address: String,
    /// Pipeline name and 1-based place in it.
    pub pipeline: Option<(String, i64)>,
    pub allow_insecure: bool,
    pub two_step: bool,
    /// The minted console-scope token, sealed before it is stored.
    pub credential: String,
    pub credential_name: String,
    pub created_by: Option<String>,
}

/// A front-end as an environment reported it at the last successful poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendSnapshot {
    pub name: String,
    pub address: String,
    pub state: FrontendState,
    pub generation: i64,
    pub enabled: bool,
}

/// The last poll of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRecord {
    pub environment_id: String,
    pub checked_at_ms: i64,
    pub reachable: bool,
    /// Why the last poll failed (when not reachable).
    pub error: Option<String>,
    pub runway_version: Option<String>,
    /// The environment's own name for itself.
    pub environment_name: Option<String>,
    pub generation: Option<i64>,
    /// The last successful poll.
    pub last_seen_at_ms: Option<i64>,
    pub frontends: Vec<FrontendSnapshot>,
}

const ENV_COLUMNS: &str = "e.id, e.name, e.address, e.pipeline_id, p.name AS pipeline, \
     e.position, e.allow_insecure, e.two_step, e.credential_name, e.created_at_ms, e.created_by";
const ENV_FROM: &str = "environments e LEFT JOIN pipelines p ON p.id = e.pipeline_id";

fn environment_from_row(r: &AnyRow) -> sqlx::Result<EnvironmentRecord> {
    Ok(EnvironmentRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        address: r.try_get("address")?,
        pipeline_id: r.try_get("pipeline_id")?,
        pipeline: r.try_get("pipeline")?,
        position: r.try_get("position")?,
        allow_insecure: r.try_get::<i64, _>("allow_insecure")? != 0,
        two_step: r.try_get::<i64, _>("two_step")? != 0,
        credential_name: r.try_get("credential_name")?,
        created_at_ms: r.try_get("created_at_ms")?,
        created_by: r.try_get("created_by")?,
    })
}

fn pipeline_from_row(r: &AnyRow) -> sqlx::Result<PipelineRecord> {
    Ok(PipelineRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at_ms: r.try_get("created_at_ms")?,
        created_by: r.try_get("created_by")?,
    })
}

impl ConsoleStore {
    /// Creates a pipeline ([`StoreError::Conflict`] if the name is taken).
    pub async fn create_pipeline(
        &self,
        name: &str,
        description: &str,
        created_by: Option<&str>,
    ) -> Result<PipelineRecord> {
        let what = || format!("failed to create pipeline {name:?}");
        let row = sqlx::query(
            "INSERT INTO pipelines (id, name, description, created_at_ms, created_by) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, name, description, created_at_ms, created_by",
        )
        .bind(new_key())
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .bind(created_by)
        .fetch_one(&self.catalog().pool)
        .await;
        match row {
            Ok(row) => pipeline_from_row(&row).context(what),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a pipeline named {name:?} already exists (`runway pipeline show {name}`)"
            ))),
            Err(e) => Err(e).context(what),
        }
    }

    /// Every pipeline, by name.
    pub async fn pipelines(&self) -> Result<Vec<PipelineRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, description, created_at_ms, created_by FROM pipelines ORDER BY name",
        )
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list pipelines".to_string())?;
        rows.iter()
            .map(pipeline_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode pipelines".to_string())
    }

    /// The pipeline with this name or key.
    pub async fn pipeline(&self, name_or_key: &str) -> Result<Option<PipelineRecord>> {
        let row = sqlx::query(
            "SELECT id, name, description, created_at_ms, created_by FROM pipelines \
             WHERE name = $1 OR id = $2",
        )
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read pipeline {name_or_key:?}"))?;
        row.as_ref()
            .map(pipeline_from_row)
            .transpose()
            .context(|| "failed to decode a pipeline".to_string())
    }

    /// Records an environment and its sealed credential. With a pipeline,
    /// the pipeline must exist and the place be free. Nothing is stored on error.
    pub async fn add_environment(&self, new: &NewEnvironment) -> Result<EnvironmentRecord> {
        let what = || format!("failed to register environment {:?}", new.name);
        let key = self.key()?;
        let sealed = key.seal(&credential_context(&new.id), &new.credential);
        let mut tx = self
            .catalog()
            .begin_write("register an environment")
            .await?;
        let taken =
            sqlx::query("SELECT id FROM environments WHERE name = $1 AND removed_at_ms IS NULL")
                .bind(&new.name)
                .fetch_optional(&mut *tx)
                .await
                .context(what)?
                .is_some();
        if taken {
            tx.rollback().await.context(what)?;
            return Err(StoreError::Conflict(format!(
                "an environment named {:?} is already registered (`runway env show {}`); \
                 pick another name or remove it first",
                new.name, new.name
            )));
        }
        let (pipeline_id, position) = match &new.pipeline {
            None => (None, None),
            Some((pipeline, position)) => {
                let found = sqlx::query("SELECT id FROM pipelines WHERE name = $1")
                    .bind(pipeline)
                    .fetch_optional(&mut *tx)
                    .await
                    .context(what)?;
                let Some(found) = found else {
                    tx.rollback().await.context(what)?;
                    return Err(StoreError::NotFound(format!(
                        "no pipeline named {pipeline:?}; create it first with \
                         `runway pipeline add {pipeline}`"
                    )));
                };
                let id: String = found.try_get("id").context(what)?;
                let occupant = sqlx::query(
                    "SELECT name FROM environments \
                     WHERE pipeline_id = $1 AND position = $2 AND removed_at_ms IS NULL",
                )
                .bind(&id)
                .bind(position)
                .fetch_optional(&mut *tx)
                .await
                .context(what)?;
                if let Some(occupant) = occupant {
                    let occupant: String = occupant.try_get("name").context(what)?;
                    tx.rollback().await.context(what)?;
                    return Err(StoreError::Conflict(format!(
                        "place {position} of pipeline {pipeline:?} is taken by environment \
                         {occupant:?}; give another --order"
                    )));
                }
                (Some(id), Some(*position))
            }
        };
        sqlx::query(
            "INSERT INTO environments (id, name, address, pipeline_id, position, allow_insecure, \
             two_step, credential_sealed, credential_key_id, credential_name, created_at_ms, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&new.id)
        .bind(&new.name)
        .bind(&new.address)
        .bind(&pipeline_id)
        .bind(position)
        .bind(flag(new.allow_insecure))
        .bind(flag(new.two_step))
        .bind(&sealed)
        .bind(key.id())
        .bind(&new.credential_name)
        .bind(now_ms())
        .bind(&new.created_by)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        self.environment(&new.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("environment {} vanished", new.id)))
    }

    /// Every registered environment, by pipeline, place and name.
    pub async fn environments(&self) -> Result<Vec<EnvironmentRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENV_COLUMNS} FROM {ENV_FROM} WHERE e.removed_at_ms IS NULL \
             ORDER BY p.name IS NULL, p.name, e.position, e.name"
        ))
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list environments".to_string())?;
        rows.iter()
            .map(environment_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode environments".to_string())
    }

    /// The registered environment with this name or key.
    pub async fn environment(&self, name_or_key: &str) -> Result<Option<EnvironmentRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {ENV_COLUMNS} FROM {ENV_FROM} \
             WHERE e.removed_at_ms IS NULL AND (e.name = $1 OR e.id = $2)"
        ))
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read environment {name_or_key:?}"))?;
        row.as_ref()
            .map(environment_from_row)
            .transpose()
            .context(|| "failed to decode an environment".to_string())
    }

    /// The environments of a pipeline, in order.
    pub async fn pipeline_environments(&self, pipeline_id: &str) -> Result<Vec<EnvironmentRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENV_COLUMNS} FROM {ENV_FROM} \
             WHERE e.removed_at_ms IS NULL AND e.pipeline_id = $1 ORDER BY e.position"
        ))
        .bind(pipeline_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list a pipeline's environments".to_string())?;
        rows.iter()
            .map(environment_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode environments".to_string())
    }

    /// Moves an environment into a pipeline at a place (or out of any
    /// pipeline with `None`). An environment belongs to one pipeline.
    pub async fn set_environment_pipeline(
        &self,
        environment_id: &str,
        pipeline: Option<(&str, i64)>,
    ) -> Result<()> {
        let what = || format!("failed to move environment {environment_id}");
        let mut tx = self.catalog().begin_write("move an environment").await?;
        let (pipeline_id, position) = match pipeline {
            None => (None, None),
            Some((pipeline_id, position)) => {
                let occupant = sqlx::query(
                    "SELECT name FROM environments WHERE pipeline_id = $1 AND position = $2 \
                     AND removed_at_ms IS NULL AND id <> $3",
                )
                .bind(pipeline_id)
                .bind(position)
                .bind(environment_id)
                .fetch_optional(&mut *tx)
                .await
                .context(what)?;
                if let Some(occupant) = occupant {
                    let occupant: String = occupant.try_get("name").context(what)?;
                    tx.rollback().await.context(what)?;
                    return Err(StoreError::Conflict(format!(
                        "that place of the pipeline is taken by environment {occupant:?}; \
                         give another order"
                    )));
                }
                (Some(pipeline_id.to_string()), Some(position))
            }
        };
        let n = sqlx::query(
            "UPDATE environments SET pipeline_id = $1, position = $2 \
             WHERE id = $3 AND removed_at_ms IS NULL",
        )
        .bind(pipeline_id)
        .bind(position)
        .bind(environment_id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if n != 1 {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!(
                "no registered environment {environment_id}"
            )));
        }
        tx.commit().await.context(what)?;
        Ok(())
    }

    /// Records a new address of an environment (e.g. `runway up` restarted
    /// on other ports). The credential stays: it belongs to the environment,
    /// not to its address.
    pub async fn set_environment_address(&self, environment_id: &str, address: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE environments SET address = $1 WHERE id = $2 AND removed_at_ms IS NULL",
        )
        .bind(address)
        .bind(environment_id)
        .execute(&self.catalog().pool)
        .await
        .context(|| format!("failed to update the address of environment {environment_id}"))?
        .rows_affected();
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!(
                "no registered environment {environment_id}"
            )))
        }
    }

    /// The plaintext console credential of an environment.
    pub async fn environment_credential(&self, environment_id: &str) -> Result<String> {
        let what = || format!("failed to read the credential of environment {environment_id}");
        let row = sqlx::query("SELECT credential_sealed FROM environments WHERE id = $1")
            .bind(environment_id)
            .fetch_optional(&self.catalog().pool)
            .await
            .context(what)?
            .ok_or_else(|| StoreError::NotFound(format!("no environment {environment_id}")))?;
        let sealed: String = row.try_get("credential_sealed").context(what)?;
        let key = self.key()?;
        key.open(&credential_context(environment_id), &sealed)
            .ok_or_else(|| StoreError::SecretsKey {
                path: key.path().to_path_buf(),
                problem: format!(
                    "does not open the credential of environment {environment_id}; restore the \
                     console's key from a backup"
                ),
            })
    }

    /// Removes an environment from the console (its history stays in plans).
    /// Refused while a plan that is not finished has it as source or target
    /// ([`StoreError::Conflict`] naming the plans). Returns the removed record.
    /// Fails (conflict) when deployment plans that are not finished use the
    /// environment: [`ConsoleStore::remove_environment`] checks it again in
    /// its own transaction; this lets the console refuse before it gives the
    /// environment's credential back.
    pub async fn check_environment_removable(&self, name_or_key: &str) -> Result<()> {
        let env = self.environment(name_or_key).await?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no registered environment {name_or_key:?} (`runway env list` shows them)"
            ))
        })?;
        refuse_unfinished_plans(&self.catalog().pool, &env).await
    }

    pub async fn remove_environment(&self, name_or_key: &str) -> Result<EnvironmentRecord> {
        let what = || format!("failed to remove environment {name_or_key:?}");
        let env = self.environment(name_or_key).await?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no registered environment {name_or_key:?} (`runway env list` shows them)"
            ))
        })?;
        let mut tx = self.catalog().begin_write("remove an environment").await?;
        if let Err(e) = refuse_unfinished_plans(&mut *tx, &env).await {
            tx.rollback().await.context(what)?;
            return Err(e);
        }
        let now = now_ms();
        for sql in [
            "DELETE FROM environment_frontends WHERE environment_id = $1",
            "DELETE FROM environment_health WHERE environment_id = $1",
            "DELETE FROM running_versions WHERE environment_id = $1",
        ] {
            sqlx::query(sql)
                .bind(&env.id)
                .execute(&mut *tx)
                .await
                .context(what)?;
        }
        sqlx::query(
            "UPDATE environments SET removed_at_ms = $1, credential_sealed = '' WHERE id = $2",
        )
        .bind(now)
        .bind(&env.id)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        Ok(env)
    }

    /// The last poll of an environment, if it was polled.
    pub async fn environment_health(&self, environment_id: &str) -> Result<Option<HealthRecord>> {
        let what = || format!("failed to read the health of environment {environment_id}");
        let row = sqlx::query(
            "SELECT environment_id, checked_at_ms, reachable, error, runway_version, \
             environment_name, generation, last_seen_at_ms FROM environment_health \
             WHERE environment_id = $1",
        )
        .bind(environment_id)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(what)?;
        let Some(row) = row else { return Ok(None) };
        let frontends = sqlx::query(
            "SELECT name, address, state, generation, enabled FROM environment_frontends \
             WHERE environment_id = $1 ORDER BY name",
        )
        .bind(environment_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(what)?;
        let frontends = frontends
            .iter()
            .map(|r| {
                Ok(FrontendSnapshot {
                    name: r.try_get("name")?,
                    address: r.try_get("address")?,
                    state: {
                        let state: String = r.try_get("state")?;
                        FrontendState::parse(&state)
                            .ok_or_else(|| bad_column("environment_frontends.state", &state))?
                    },
                    generation: r.try_get("generation")?,
                    enabled: r.try_get::<i64, _>("enabled")? != 0,
                })
            })
            .collect::<sqlx::Result<Vec<_>>>()
            .context(what)?;
        let decode = |row: &AnyRow| -> sqlx::Result<HealthRecord> {
            Ok(HealthRecord {
                environment_id: row.try_get("environment_id")?,
                checked_at_ms: row.try_get("checked_at_ms")?,
                reachable: row.try_get::<i64, _>("reachable")? != 0,
                error: row.try_get("error")?,
                runway_version: row.try_get("runway_version")?,
                environment_name: row.try_get("environment_name")?,
                generation: row.try_get("generation")?,
                last_seen_at_ms: row.try_get("last_seen_at_ms")?,
                frontends: Vec::new(),
            })
        };
        let mut health = decode(&row).context(what)?;
        health.frontends = frontends;
        Ok(Some(health))
    }

    /// Records a failed poll: the environment is marked unreachable with the
    /// cause; what was last seen (front-ends, running versions) is kept.
    pub async fn record_unreachable(&self, environment_id: &str, error: &str) -> Result<()> {
        let what = || format!("failed to record a poll of environment {environment_id}");
        let mut tx = self.catalog().begin_write("record a failed poll").await?;
        let updated = sqlx::query(
            "UPDATE environment_health SET checked_at_ms = $1, reachable = 0, error = $2 \
             WHERE environment_id = $3",
        )
        .bind(now_ms())
        .bind(error)
        .bind(environment_id)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO environment_health (environment_id, checked_at_ms, reachable, error) \
                 SELECT id, $1, 0, $2 FROM environments WHERE id = $3 AND removed_at_ms IS NULL",
            )
            .bind(now_ms())
            .bind(error)
            .bind(environment_id)
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        tx.commit().await.context(what)
    }
}

/// A conflict naming the plans that are not finished and use `env`.
async fn refuse_unfinished_plans<'e, E>(executor: E, env: &EnvironmentRecord) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let what = || format!("failed to check the plans of environment {:?}", env.name);
    let plans = sqlx::query(
        "SELECT id, status FROM deployment_plans \
         WHERE (target_environment_id = $1 OR source_environment_id = $1) \
         AND status IN ('saved', 'running', 'needs_user_intervention', 'aborting') \
         ORDER BY created_at_ms",
    )
    .bind(&env.id)
    .fetch_all(executor)
    .await
    .context(what)?;
    if plans.is_empty() {
        return Ok(());
    }
    let keys = plans
        .iter()
        .map(|r| {
            Ok(format!(
                "{} ({})",
                r.try_get::<String, _>("id")?,
                r.try_get::<String, _>("status")?
            ))
        })
        .collect::<sqlx::Result<Vec<_>>>()
        .context(what)?;
    Err(StoreError::Conflict(format!(
        "environment {:?} is used by deployment plans that are not finished: {}; \
         finish, abort or delete them first (`runway deploy delete KEY`)",
        env.name,
        keys.join(", ")
    )))
}
