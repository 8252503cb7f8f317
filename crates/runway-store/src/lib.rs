//! `runway-store`: the three catalogs of an environment and the only crate that
//! speaks SQL.
//!
//! * **platform** — the controller lease, settings, apps and their versions, compiled-artifact
//!   metadata, deployments and the committed generation, properties, key-value
//!   data, API tokens, timer state (overrides, next due time, run leases),
//!   background jobs (`jobs`: enqueue, claims with leases, outcomes, retention);
//!   the trusted console's public keys (`trust`) and the append-only audit
//!   log of the environment's API (`audit`); deployment zones and the
//!   zone of each app (`zones`);
//! * **log** — request log, app output and errors, written in batches by a
//!   background task ([`LogSink`]) and trimmed by [`Store::spawn_retention`];
//! * **session** — login sessions.
//!
//! It also owns the content-addressed files next to the catalogs
//! ([`BlobStore`]: `packages/` and `artifacts/`).
//!
//! Two backends, one code path: SQLite files (`<dir>/platform.db`, `log.db`,
//! `session.db`, WAL mode) for `runway up`, or one PostgreSQL database per
//! environment with the schemas `platform`, `log` and `session` for a farm.
//! Queries go through sqlx's `Any` driver with portable SQL (`$N`
//! placeholders, BIGINT millisecond timestamps). Migrations are embedded, one
//! directory per catalog and backend (`migrations/<backend>/<catalog>/`).
//!
//! Every change that touches more than one row runs in one transaction: when it
//! fails the catalog is left as it was.

mod apps;
mod audit;
mod blobs;
mod claims;
pub mod console;
mod db;
mod deployments;
mod email;
mod error;
pub mod files;
mod frontends;
mod jobs;
mod kv;
mod lease;
mod log_pages;
mod logs;
mod properties;
mod rollups;
mod secrets;
mod sessions;
mod settings;
mod timers;
mod tokens;
mod trust;
mod zones;

pub mod testing;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub use apps::{
    AppRecord, ArtifactRecord, DeleteVersion, InsertVersion, NewVersion, VersionRecord,
    version_identity,
};
pub use audit::{AuditFilter, AuditRecord, DEFAULT_AUDIT_RETENTION, NewAuditRow};
pub use blobs::{BlobError, BlobKind, BlobStore, plain_bytes};
pub use console::ConsoleStore;
pub use deployments::{BeginDeployment, DeploymentRecord, PropertyChange};
pub use email::{
    EmailClaim, EmailRecord, EmailSettingsRecord, NewEmail, NewEmailSettings, email_message_id,
    new_email_id,
};
pub use error::{Result, StoreError};
pub use frontends::{FrontendRecord, FrontendRegistration};
pub use jobs::{Enqueued, JobClaim, JobOutcome, JobRecord, NewJob};
pub use kv::{KvQuota, KvUsage, MAX_BUCKET_BYTES, MAX_KEY_BYTES};
pub use lease::{Fence, Lease, LeaseState};
pub use log_pages::{LogPage, MAX_ROWS_PER_REQUEST};
pub use logs::{
    DropCause, LogDrops, LogEntry, LogKind, LogLevel, LogLimits, LogQuery, LogSink,
    MAX_MESSAGE_BYTES, MAX_PATH_BYTES, NewLogEntry, OUTPUT_BURST_SECS, ROW_OVERHEAD,
};
pub use rollups::{BUCKET_EDGES_US, BUCKETS, MINUTE_MS, QUARTER_MS, RollupPoint, WIDTHS_MS};
pub use secrets::SecretsKey;
pub use sessions::SessionRecord;
pub use timers::{TIME_ZONE_SETTING, TimerClaim, TimerOutcome, TimerRunning, TimerState};
pub use tokens::TokenRecord;
pub use trust::{ConsoleTrustRecord, TrustedKeyRecord};
pub use zones::{AppLocation, GLOBAL_ZONE, ZoneChanges, ZoneRecord};

pub use db::redact_url;
use db::{Catalog, sqlite_path};

/// Milliseconds since the unix epoch, the unit of every timestamp in the catalogs.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// `Store` and `LogSink` are shared across tasks and threads.
const _: fn() = || {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Store>();
    shareable::<LogSink>();
};

/// Handle on an environment's catalogs. Cheap to clone; all clones share the
/// same connection pools and log writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    platform: Catalog,
    log: Catalog,
    session: Catalog,
    sink: LogSink,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The controller lease deployments are recorded under (see `lease`).
    fence: Mutex<Option<Fence>>,
    /// Seals secret property values (see `properties`); set once, at start.
    secrets: std::sync::OnceLock<SecretsKey>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the SQLite catalogs in `dir` (created if missing), applies pending
    /// migrations and starts the log writer. Must be called inside a tokio runtime.
    pub async fn open_sqlite(dir: &Path) -> Result<Store> {
        if let Some(found) = db::console_file_in(dir) {
            return Err(StoreError::WrongDatabase(format!(
                "{} holds an infrastructure console's catalog ({}): an environment needs a \
                 database of its own; give it another directory",
                dir.display(),
                found.display()
            )));
        }
        files::create_private_dir(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Store::open_each(|name| async move {
            let migrator = match name {
                "platform" => &db::SQLITE_PLATFORM,
                "log" => &db::SQLITE_LOG,
                _ => &db::SQLITE_SESSION,
            };
            Catalog::open_sqlite(name, &sqlite_path(dir, name), migrator).await
        })
        .await
    }

    /// Opens the catalogs of an environment in the PostgreSQL database at
    /// `url` (one schema per catalog, created if missing), applies pending
    /// migrations and starts the log writer. Must be called inside a tokio runtime.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        if let Some(schema) = db::schema_present(url, &db::CONSOLE_SCHEMAS, "platform").await? {
            return Err(StoreError::WrongDatabase(format!(
                "PostgreSQL database {} holds an infrastructure console's catalog (schema \
                 {schema}): an environment needs a database of its own; create one and give \
                 its URL to --database",
                db::redact_url(url)
            )));
        }
        Store::open_each(|name| async move {
            // Pool sizes: a farm has many processes per database server.
            let (max_connections, migrator) = match name {
                "platform" => (6, &db::PG_PLATFORM),
                "log" => (2, &db::PG_LOG),
                _ => (2, &db::PG_SESSION),
            };
            Catalog::open_postgres(name, url, max_connections, migrator).await
        })
        .await
    }

    /// Opens the catalogs at `location`: a `postgres://` URL, or a directory
    /// for SQLite files.
    pub async fn open(location: &str) -> Result<Store> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Store::open_postgres(location).await
        } else {
            Store::open_sqlite(Path::new(
                location.strip_prefix("sqlite:").unwrap_or(location),
            ))
            .await
        }
    }

    /// Opens the platform, log and session catalogs with `open`, in that
    /// order; if one fails, those already open are closed.
    async fn open_each<F, Fut>(open: F) -> Result<Store>
    where
        F: Fn(&'static str) -> Fut,
        Fut: std::future::Future<Output = Result<Catalog>>,
    {
        let mut opened: Vec<Catalog> = Vec::with_capacity(3);
        for name in ["platform", "log", "session"] {
            match open(name).await {
                Ok(catalog) => opened.push(catalog),
                Err(e) => {
                    for catalog in &opened {
                        catalog.pool.close().await;
                    }
                    return Err(e);
                }
            }
        }
        let [platform, log, session] = <[Catalog; 3]>::try_from(opened)
            .unwrap_or_else(|_| unreachable!("three catalogs were opened"));
        Ok(Store::assemble(platform, log, session))
    }

    fn assemble(platform: Catalog, log: Catalog, session: Catalog) -> Store {
        let (sink, writer) = logs::start_writer(log.clone());
        Store {
            inner: Arc::new(Inner {
                platform,
                log,
                session,
                sink,
                writer: Mutex::new(Some(writer)),
                fence: Mutex::new(None),
                secrets: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Which backend the catalogs are on: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.inner.platform.backend {
            db::Backend::Sqlite => "sqlite",
            db::Backend::Postgres => "postgres",
        }
    }

    /// Flushes and stops the log writer, then closes every catalog. Later calls
    /// on any clone fail with a "pool closed" error; log entries written after
    /// this are counted as dropped. Calling it twice is harmless.
    pub async fn close(&self) {
        self.inner.sink.stop().await;
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(writer) = writer {
            // The writer exits right after acknowledging the stop; don't wait
            // forever if it is somehow stuck.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), writer).await;
        }
        self.inner.platform.pool.close().await;
        self.inner.log.pool.close().await;
        self.inner.session.pool.close().await;
    }

    pub(crate) fn platform(&self) -> &Catalog {
        &self.inner.platform
    }

    pub(crate) fn log_catalog(&self) -> &Catalog {
        &self.inner.log
    }

    pub(crate) fn session_catalog(&self) -> &Catalog {
        &self.inner.session
    }
}
