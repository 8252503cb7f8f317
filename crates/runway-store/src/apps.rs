//! Apps, their published versions and compiled-artifact metadata (platform
//! catalog).
//!
//! An app row exists while the app has at least one version or is running.
//! Deleting an app's last version deletes the app row, but keeps its
//! properties and key-value data: publishing the app again finds them.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Context, Result};
use crate::{Store, now_ms};

/// A version to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub app: String,
    pub version: String,
    /// Digest of the package.
    pub digest: String,
    /// Digest of the wasm component inside the package.
    pub component_digest: String,
    pub description: Option<String>,
    pub manifest_toml: String,
    pub size_bytes: i64,
}

/// Outcome of [`Store::insert_version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertVersion {
    /// The version was new and is now published.
    Created,
    /// The same version with the same digest was already published.
    Unchanged,
    /// The version was already published with different content.
    Conflict { existing_digest: String },
    /// A version equal under semver precedence (differing only in build
    /// metadata, `1.0.0+a` / `1.0.0+b`) is already published: it is the same
    /// version.
    SameVersion {
        existing_version: String,
        existing_digest: String,
    },
}

/// What identifies a version: semver precedence ignores build metadata, so
/// `1.0.0+a`, `1.0.0+b` and `1.0.0` are one version. (For valid semver,
/// equal precedence is equal text before `+`.)
pub fn version_identity(version: &str) -> &str {
    version.split_once('+').map_or(version, |(core, _)| core)
}

/// A published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub app: String,
    pub version: String,
    pub digest: String,
    pub component_digest: String,
    pub description: Option<String>,
    pub manifest_toml: String,
    pub size_bytes: i64,
    pub published_at_ms: i64,
}

/// An app and what runs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    pub running_version: Option<String>,
    pub running_digest: Option<String>,
    pub deployed_at_ms: Option<i64>,
    pub version_count: i64,
    pub created_at_ms: i64,
}

/// Outcome of [`Store::delete_version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteVersion {
    Deleted,
    NotFound,
    /// The version is the app's running version; undeploy or deploy another first.
    Running,
    /// A deployment that is running or prepared (staged, waiting for its
    /// commit) switches to this version: commit or abort it first.
    Deploying {
        deployment: i64,
    },
}

/// A compiled component: one per (component digest, engine configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    pub component_digest: String,
    /// Engine fingerprint (wasmtime version + compilation settings).
    pub engine: String,
    pub artifact_digest: String,
    pub size_bytes: i64,
    pub compile_ms: i64,
    pub created_at_ms: i64,
}

const VERSION_COLUMNS: &str = "app, version, digest, component_digest, description, \
                               manifest_toml, size_bytes, published_at_ms";

fn version_from_row(r: &AnyRow) -> sqlx::Result<VersionRecord> {
    Ok(VersionRecord {
        app: r.try_get("app")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        component_digest: r.try_get("component_digest")?,
        description: r.try_get("description")?,
        manifest_toml: r.try_get("manifest_toml")?,
        size_bytes: r.try_get("size_bytes")?,
        published_at_ms: r.try_get("published_at_ms")?,
    })
}

const APP_SELECT: &str = "SELECT a.name, a.running_version, a.running_digest, a.deployed_at_ms, \
     a.created_at_ms, (SELECT COUNT(*) FROM versions v WHERE v.app = a.name) AS version_count \
     FROM apps a";

fn app_from_row(r: &AnyRow) -> sqlx::Result<AppRecord> {
    Ok(AppRecord {
        name: r.try_get("name")?,
        running_version: r.try_get("running_version")?,
        running_digest: r.try_get("running_digest")?,
        deployed_at_ms: r.try_get("deployed_at_ms")?,
        version_count: r.try_get("version_count")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

fn artifact_from_row(r: &AnyRow) -> sqlx::Result<ArtifactRecord> {
    Ok(ArtifactRecord {
        component_digest: r.try_get("component_digest")?,
        engine: r.try_get("engine")?,
        artifact_digest: r.try_get("artifact_digest")?,
        size_bytes: r.try_get("size_bytes")?,
        compile_ms: r.try_get("compile_ms")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

impl Store {
    /// Publishes a version, creating the app row if needed. Safe against
    /// concurrent publishes of the same (app, version): exactly one creates it,
    /// the others see `Unchanged` or `Conflict`.
    pub async fn insert_version(&self, v: &NewVersion) -> Result<InsertVersion> {
        let what = || format!("failed to publish {} {}", v.app, v.version);
        let now = now_ms();
        let mut tx = self
            .platform()
            .begin_write(&format!("publish {} {}", v.app, v.version))
            .await?;
        sqlx::query(
            "INSERT INTO apps (name, created_at_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&v.app)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?;
        // Lock the app row (SQLite holds the write lock already), so two
        // publishes of `1.0.0+a` and `1.0.0+b` cannot both pass the check below.
        sqlx::query("UPDATE apps SET name = name WHERE name = $1")
            .bind(&v.app)
            .execute(&mut *tx)
            .await
            .context(what)?;
        let identity = version_identity(&v.version);
        let same = sqlx::query("SELECT version, digest FROM versions WHERE app = $1")
            .bind(&v.app)
            .fetch_all(&mut *tx)
            .await
            .context(what)?
            .iter()
            .map(|r| Ok((r.try_get("version")?, r.try_get("digest")?)))
            .collect::<sqlx::Result<Vec<(String, String)>>>()
            .context(what)?
            .into_iter()
            .find(|(version, _)| version != &v.version && version_identity(version) == identity);
        if let Some((existing_version, existing_digest)) = same {
            tx.rollback().await.context(what)?;
            return Ok(InsertVersion::SameVersion {
                existing_version,
                existing_digest,
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO versions (app, version, digest, component_digest, description, \
             manifest_toml, size_bytes, published_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (app, version) DO NOTHING",
        )
        .bind(&v.app)
        .bind(&v.version)
        .bind(&v.digest)
        .bind(&v.component_digest)
        .bind(v.description.as_deref())
        .bind(&v.manifest_toml)
        .bind(v.size_bytes)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        let outcome = if inserted == 1 {
            InsertVersion::Created
        } else {
            let existing: String =
                sqlx::query("SELECT digest FROM versions WHERE app = $1 AND version = $2")
                    .bind(&v.app)
                    .bind(&v.version)
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|r| r.try_get("digest"))
                    .context(what)?;
            if existing == v.digest {
                InsertVersion::Unchanged
            } else {
                InsertVersion::Conflict {
                    existing_digest: existing,
                }
            }
        };
        tx.commit().await.context(what)?;
        Ok(outcome)
    }

    /// One published version: the one spelled `version`, else the one equal
    /// to it under semver precedence (`1.0.0` finds `1.0.0+build`; see
    /// [`version_identity`]). Its `version` is the spelling it was published
    /// with.
    pub async fn version(&self, app: &str, version: &str) -> Result<Option<VersionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE app = $1 AND version = $2"
        ))
        .bind(app)
        .bind(version)
        .fetch_optional(&self.platform().pool)
        .await
        .context(|| format!("failed to read version {app} {version}"))?;
        let found = row
            .as_ref()
            .map(version_from_row)
            .transpose()
            .context(|| format!("failed to decode version {app} {version}"))?;
        if found.is_some() {
            return Ok(found);
        }
        let identity = version_identity(version);
        Ok(self
            .versions(app)
            .await?
            .into_iter()
            .find(|v| version_identity(&v.version) == identity))
    }

    /// All published versions of `app`, most recently published first.
    pub async fn versions(&self, app: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE app = $1 \
             ORDER BY published_at_ms DESC, id DESC"
        ))
        .bind(app)
        .fetch_all(&self.platform().pool)
        .await
        .context(|| format!("failed to list versions of {app}"))?;
        rows.iter()
            .map(version_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| format!("failed to decode versions of {app}"))
    }

    /// All apps, by name.
    pub async fn apps(&self) -> Result<Vec<AppRecord>> {
        let rows = sqlx::query(&format!("{APP_SELECT} ORDER BY a.name"))
            .fetch_all(&self.platform().pool)
            .await
            .context(|| "failed to list apps".to_string())?;
        rows.iter()
            .map(app_from_row)
            .collect::<sqlx::Result<_>>()
            .context(|| "failed to decode apps".to_string())
    }

    /// One app.
    pub async fn app(&self, name: &str) -> Result<Option<AppRecord>> {
        let row = sqlx::query(&format!("{APP_SELECT} WHERE a.name = $1"))
            .bind(name)
            .fetch_optional(&self.platform().pool)
            .await
            .context(|| format!("failed to read app {name}"))?;
        row.as_ref()
            .map(app_from_row)
            .transpose()
            .context(|| format!("failed to decode app {name}"))
    }

    /// Deletes a published version unless it is running. Deleting the last
    /// version of an app that is not running deletes the app row too; its
    /// properties and key-value data are kept.
    pub async fn delete_version(&self, app: &str, version: &str) -> Result<DeleteVersion> {
        let what = || format!("failed to delete version {app} {version}");
        let mut tx = self
            .platform()
            .begin_write(&format!("delete {app} {version}"))
            .await?;
        let deploying: Option<i64> = sqlx::query_scalar(
            "SELECT d.id FROM deployments d JOIN deployment_operations o \
             ON o.deployment_id = d.id WHERE d.status IN ('running', 'prepared') \
             AND o.kind = 'deploy' AND o.app = $1 AND o.version = $2 LIMIT 1",
        )
        .bind(app)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await
        .context(what)?;
        if let Some(deployment) = deploying {
            tx.rollback().await.context(what)?;
            return Ok(DeleteVersion::Deploying { deployment });
        }
        let deleted = sqlx::query(
            "DELETE FROM versions WHERE app = $1 AND version = $2 AND NOT EXISTS \
             (SELECT 1 FROM apps WHERE name = $3 AND running_version = $4)",
        )
        .bind(app)
        .bind(version)
        .bind(app)
        .bind(version)
        .execute(&mut *tx)
        .await
        .context(what)?
        .rows_affected();
        if deleted == 0 {
            let exists =
                sqlx::query("SELECT 1 AS present FROM versions WHERE app = $1 AND version = $2")
                    .bind(app)
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await
                    .context(what)?
                    .is_some();
            tx.rollback().await.context(what)?;
            return Ok(if exists {
                DeleteVersion::Running
            } else {
                DeleteVersion::NotFound
            });
        }
        sqlx::query(
            "DELETE FROM apps WHERE name = $1 AND running_version IS NULL AND NOT EXISTS \
             (SELECT 1 FROM versions WHERE app = $2)",
        )
        .bind(app)
        .bind(app)
        .execute(&mut *tx)
        .await
        .context(what)?;
        tx.commit().await.context(what)?;
        Ok(DeleteVersion::Deleted)
    }

    /// The compiled artifact of a component for an engine configuration.
    pub async fn artifact(
        &self,
        component_digest: &str,
        engine: &str,
    ) -> Result<Option<ArtifactRecord>> {
        let row = sqlx::query(
            "SELECT component_digest, engine, artifact_digest, size_bytes, compile_ms, \
             created_at_ms FROM artifacts WHERE component_digest = $1 AND engine = $2",
        )
        .bind(component_digest)
        .bind(engine)
        .fetch_optional(&self.platform().pool)
        .await
        .context(|| format!("failed to read artifact of {component_digest} for {engine}"))?;
        row.as_ref()
            .map(artifact_from_row)
            .transpose()
            .context(|| format!("failed to decode artifact of {component_digest} for {engine}"))
    }

    /// Records a compiled artifact. Idempotent: if one is already recorded for
    /// (component digest, engine), the existing record wins.
    pub async fn insert_artifact(&self, a: &ArtifactRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO artifacts (component_digest, engine, artifact_digest, size_bytes, \
             compile_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (component_digest, engine) DO NOTHING",
        )
        .bind(&a.component_digest)
        .bind(&a.engine)
        .bind(&a.artifact_digest)
        .bind(a.size_bytes)
        .bind(a.compile_ms)
        .bind(a.created_at_ms)
        .execute(&self.platform().pool)
        .await
        .context(|| {
            format!(
                "failed to record artifact of {} for {}",
                a.component_digest, a.engine
            )
        })?;
        Ok(())
    }
}
