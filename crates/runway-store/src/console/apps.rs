//! Applications and versions across environments, and what each environment
//! runs. A version key identifies exactly one package digest; an
//! (application, version number) pair exactly one key. Recording a version
//! ("tagging") never changes bytes: it names a digest that already exists in
//! an environment.

use runway_api::v1::AppStatus;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::environments::FrontendSnapshot;
use super::{ConsoleStore, flag, new_key};
use crate::deployments::bad_column;
use crate::error::{Context, Result, StoreError};
use crate::now_ms;

/// An application known to the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at_ms: i64,
}

/// A version of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersionRecord {
    pub id: String,
    pub application_id: String,
    pub application: String,
    pub version: String,
    pub digest: String,
    pub description: Option<String>,
    pub changelog: String,
    pub created_at_ms: i64,
    /// Who tagged it (`None`: recorded from a poll of `first_environment_id`).
    pub created_by: Option<String>,
    pub first_environment_id: Option<String>,
}

/// What an environment runs of an application, at its last successful poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningRecord {
    pub environment_id: String,
    pub application_id: String,
    pub application: String,
    /// The console's version key, when the digest is the console's for that number.
    pub version_id: Option<String>,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub status: AppStatus,
    pub deployed_at_ms: Option<i64>,
    pub observed_at_ms: i64,
}

/// An app as a poll saw it in an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedApp {
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub status: AppStatus,
    pub deployed_at_ms: Option<i64>,
}

/// A successful poll of an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub runway_version: String,
    pub environment_name: String,
    pub generation: i64,
    pub frontends: Vec<FrontendSnapshot>,
    pub apps: Vec<ObservedApp>,
}

/// What recording a poll found worth saying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Versions recorded for the first time.
    pub new_versions: Vec<String>,
    /// `app@version` the environment runs with a digest other than the
    /// console's version of that number (not recorded as that version).
    pub digest_mismatches: Vec<String>,
}

const VERSION_COLUMNS: &str = "v.id, v.application_id, a.name AS application, v.version, \
     v.digest, v.description, v.changelog, v.created_at_ms, v.created_by, v.first_environment_id";

fn version_from_row(r: &AnyRow) -> sqlx::Result<AppVersionRecord> {
    Ok(AppVersionRecord {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        application: r.try_get("application")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        description: r.try_get("description")?,
        changelog: r.try_get("changelog")?,
        created_at_ms: r.try_get("created_at_ms")?,
        created_by: r.try_get("created_by")?,
        first_environment_id: r.try_get("first_environment_id")?,
    })
}

fn application_from_row(r: &AnyRow) -> sqlx::Result<ApplicationRecord> {
    Ok(ApplicationRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// The application's id, creating it if new (inside `tx`).
async fn ensure_application(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    name: &str,
    description: Option<&str>,
) -> sqlx::Result<String> {
    if let Some(row) = sqlx::query("SELECT id FROM applications WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
    {
        let id: String = row.try_get("id")?;
        if description.is_some() {
            sqlx::query("UPDATE applications SET description = $1 WHERE id = $2")
                .bind(description)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
        }
        return Ok(id);
    }
    let id = new_key();
    sqlx::query(
        "INSERT INTO applications (id, name, description, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(name)
    .bind(description)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// The key of `application_id`'s version `version`, and its digest.
async fn find_version(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    application_id: &str,
    version: &str,
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT id, digest FROM app_versions WHERE application_id = $1 AND version = $2",
    )
    .bind(application_id)
    .bind(version)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("digest")?)))
        .transpose()
}

impl ConsoleStore {
    /// Records a successful poll in one transaction: health and front-ends,
    /// applications and versions first seen, and what the environment runs.
    pub async fn record_poll(&self, environment_id: &str, poll: &Poll) -> Result<PollOutcome> {
        let what = || format!("failed to record a poll of environment {environment_id}");
        let mut tx = self.catalog().begin_write("record a poll").await?;
        let active =
            sqlx::query("SELECT id FROM environments WHERE id = $1 AND removed_at_ms IS NULL")
                .bind(environment_id)
                .fetch_optional(&mut *tx)
                .await
                .context(what)?
                .is_some();
        if !active {
            tx.rollback().await.context(what)?;
            return Err(StoreError::NotFound(format!(
                "environment {environment_id} is not registered (removed while polled)"
            )));
        }
        let now = now_ms();
        for sql in [
            "DELETE FROM environment_health WHERE environment_id = $1",
            "DELETE FROM environment_frontends WHERE environment_id = $1",
            "DELETE FROM running_versions WHERE environment_id = $1",
        ] {
            sqlx::query(sql)
                .bind(environment_id)
                .execute(&mut *tx)
                .await
                .context(what)?;
        }
        sqlx::query(
            "INSERT INTO environment_health (environment_id, checked_at_ms, reachable, error, \
             runway_version, environment_name, generation, last_seen_at_ms) \
             VALUES ($1, $2, 1, NULL, $3, $4, $5, $6)",
        )
        .bind(environment_id)
        .bind(now)
        .bind(&poll.runway_version)
        .bind(&poll.environment_name)
        .bind(poll.generation)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        for fe in &poll.frontends {
            sqlx::query(
                "INSERT INTO environment_frontends (environment_id, name, address, state, \
                 generation, enabled) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(environment_id)
            .bind(&fe.name)
            .bind(&fe.address)
            .bind(fe.state.as_str())
            .bind(fe.generation)
            .bind(flag(fe.enabled))
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        let mut outcome = PollOutcome::default();
        for app in &poll.apps {
            let app_id = ensure_application(&mut tx, &app.name, app.description.as_deref())
                .await
                .context(what)?;
            let mut version_id = None;
            if let (Some(version), Some(digest)) = (&app.version, &app.digest) {
                match find_version(&mut tx, &app_id, version)
                    .await
                    .context(what)?
                {
                    Some((id, known)) if &known == digest => version_id = Some(id),
                    Some(_) => outcome
                        .digest_mismatches
                        .push(format!("{}@{version}", app.name)),
                    None => {
                        let id = new_key();
                        sqlx::query(
                            "INSERT INTO app_versions (id, application_id, version, digest, \
                             description, changelog, created_at_ms, created_by, \
                             first_environment_id) VALUES ($1, $2, $3, $4, $5, '', $6, NULL, $7)",
                        )
                        .bind(&id)
                        .bind(&app_id)
                        .bind(version)
                        .bind(digest)
                        .bind(&app.description)
                        .bind(now)
                        .bind(environment_id)
                        .execute(&mut *tx)
                        .await
                        .context(what)?;
                        outcome.new_versions.push(format!("{}@{version}", app.name));
                        version_id = Some(id);
                    }
                }
            }
            sqlx::query(
                "INSERT INTO running_versions (environment_id, application_id, version_id, \
                 version, digest, status, deployed_at_ms, observed_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(environment_id)
            .bind(&app_id)
            .bind(&version_id)
            .bind(&app.version)
            .bind(&app.digest)
            .bind(app.status.as_str())
            .bind(app.deployed_at_ms)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context(what)?;
        }
        tx.commit().await.context(what)?;
        Ok(outcome)
    }

    /// Records a version of `application` that names `digest` (tagging).
    /// Idempotent for the same digest; a number already recorded with
    /// another digest is a [`StoreError::Conflict`] (a version key names
    /// exactly one digest). The caller checks that the digest exists.
    pub async fn tag_version(
        &self,
        application: &str,
        version: &str,
        digest: &str,
        changelog: &str,
        created_by: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<AppVersionRecord> {
        let what = || format!("failed to record version {application}@{version}");
        let mut tx = self.catalog().begin_write("record a version").await?;
        let app_id = ensure_application(&mut tx, application, None)
            .await
            .context(what)?;
        let id = match find_version(&mut tx, &app_id, version)
            .await
            .context(what)?
        {
            Some((id, known)) if known == digest => id,
            Some((_, known)) => {
                tx.rollback().await.context(what)?;
                return Err(StoreError::Conflict(format!(
                    "{application}@{version} is already recorded with digest {known}, not \
                     {digest}: a version names exactly one package; publish the new bytes \
                     under a new version number"
                )));
            }
            None => {
                let taken = sqlx::query(
                    "SELECT version FROM app_versions WHERE application_id = $1 AND digest = $2",
                )
                .bind(&app_id)
                .bind(digest)
                .fetch_optional(&mut *tx)
                .await
                .context(what)?;
                if let Some(row) = taken {
                    let other: String = row.try_get("version").context(what)?;
                    tx.rollback().await.context(what)?;
                    return Err(StoreError::Conflict(format!(
                        "digest {digest} is already {application}@{other}; a package has one \
                         version number"
                    )));
                }
                let id = new_key();
                sqlx::query(
                    "INSERT INTO app_versions (id, application_id, version, digest, changelog, \
                     created_at_ms, created_by, first_environment_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&id)
                .bind(&app_id)
                .bind(version)
                .bind(digest)
                .bind(changelog)
                .bind(now_ms())
                .bind(created_by)
                .bind(environment_id)
                .execute(&mut *tx)
                .await
                .context(what)?;
                id
            }
        };
        tx.commit().await.context(what)?;
        self.app_version(&id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("version {id} vanished")))
    }

    /// Every application, by name.
    pub async fn applications(&self) -> Result<Vec<ApplicationRecord>> {
        let rows = sqlx::query(
            "SELECT id, name, description, created_at_ms FROM applications ORDER BY name",
        )
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list applications".to_string())?;
        rows.iter()
            .map(application_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode applications".to_string())
    }

    /// The application with this name or key.
    pub async fn application(&self, name_or_key: &str) -> Result<Option<ApplicationRecord>> {
        let row = sqlx::query(
            "SELECT id, name, description, created_at_ms FROM applications \
             WHERE name = $1 OR id = $2",
        )
        .bind(name_or_key)
        .bind(name_or_key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read application {name_or_key:?}"))?;
        row.as_ref()
            .map(application_from_row)
            .transpose()
            .context(|| "failed to decode an application".to_string())
    }

    /// An application's versions, newest first.
    pub async fn app_versions(&self, application_id: &str) -> Result<Vec<AppVersionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM app_versions v JOIN applications a \
             ON a.id = v.application_id WHERE v.application_id = $1 \
             ORDER BY v.created_at_ms DESC, v.version DESC"
        ))
        .bind(application_id)
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list versions".to_string())?;
        rows.iter()
            .map(version_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode versions".to_string())
    }

    /// The version with this key.
    pub async fn app_version(&self, key: &str) -> Result<Option<AppVersionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM app_versions v JOIN applications a \
             ON a.id = v.application_id WHERE v.id = $1"
        ))
        .bind(key.to_ascii_lowercase())
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read version {key}"))?;
        row.as_ref()
            .map(version_from_row)
            .transpose()
            .context(|| "failed to decode a version".to_string())
    }

    /// `application`'s version `version`, by number.
    pub async fn app_version_by_number(
        &self,
        application: &str,
        version: &str,
    ) -> Result<Option<AppVersionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM app_versions v JOIN applications a \
             ON a.id = v.application_id WHERE a.name = $1 AND v.version = $2"
        ))
        .bind(application)
        .bind(version)
        .fetch_optional(&self.catalog().pool)
        .await
        .context(|| format!("failed to read version {application}@{version}"))?;
        row.as_ref()
            .map(version_from_row)
            .transpose()
            .context(|| "failed to decode a version".to_string())
    }

    /// What every registered environment runs (at its last successful poll).
    pub async fn running(&self) -> Result<Vec<RunningRecord>> {
        let rows = sqlx::query(
            "SELECT r.environment_id, r.application_id, a.name AS application, r.version_id, \
             r.version, r.digest, r.status, r.deployed_at_ms, r.observed_at_ms \
             FROM running_versions r JOIN applications a ON a.id = r.application_id \
             JOIN environments e ON e.id = r.environment_id WHERE e.removed_at_ms IS NULL \
             ORDER BY a.name, e.name",
        )
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to list running versions".to_string())?;
        rows.iter()
            .map(|r| {
                Ok(RunningRecord {
                    environment_id: r.try_get("environment_id")?,
                    application_id: r.try_get("application_id")?,
                    application: r.try_get("application")?,
                    version_id: r.try_get("version_id")?,
                    version: r.try_get("version")?,
                    digest: r.try_get("digest")?,
                    status: {
                        let status: String = r.try_get("status")?;
                        AppStatus::parse(&status)
                            .ok_or_else(|| bad_column("running_versions.status", &status))?
                    },
                    deployed_at_ms: r.try_get("deployed_at_ms")?,
                    observed_at_ms: r.try_get("observed_at_ms")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode running versions".to_string())
    }
}
