//! Opening a catalog: connection options, pool, journal mode and migrations.
//!
//! All catalogs are reached through sqlx's `Any` driver so the same queries run
//! on SQLite now and PostgreSQL later. Only this module (and the per-backend
//! migration directories) knows which backend is behind a pool.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};

use crate::error::{Result, StoreError};

/// The SQL backend a catalog lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
}

/// One open catalog database.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub(crate) name: &'static str,
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

pub(crate) static SQLITE_PLATFORM: Migrator = sqlx::migrate!("./migrations/sqlite/platform");
pub(crate) static SQLITE_LOG: Migrator = sqlx::migrate!("./migrations/sqlite/log");
pub(crate) static SQLITE_SESSION: Migrator = sqlx::migrate!("./migrations/sqlite/session");

/// How long a connection waits for SQLite's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Catalog {
    /// Opens (creating if missing) the SQLite catalog `name` at `path`, switches it
    /// to WAL mode and applies `migrator`.
    pub(crate) async fn open_sqlite(
        name: &'static str,
        path: &Path,
        migrator: &'static Migrator,
    ) -> Result<Catalog> {
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            catalog: name,
            path: path.to_path_buf(),
            source,
        };

        // The Any driver only takes a URL; let the SQLite options percent-encode
        // the path. The URL keeps mode=rwc (create_if_missing); SQLite's defaults
        // for URL-built options are foreign_keys=ON and busy_timeout=5s.
        let sqlite = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        let url = sqlite.to_url_lossy();
        let options = AnyConnectOptions::from_url(&url).map_err(open_err)?;

        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Per-connection settings the URL cannot carry. `foreign_keys`
                    // and `busy_timeout` are repeated so they do not depend on
                    // sqlx's defaults.
                    for pragma in [
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA synchronous = NORMAL",
                    ] {
                        conn.execute(pragma).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_err)?;

        // WAL is a property of the database file; set it once, before anything else.
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode = WAL")
            .fetch_one(&pool)
            .await
            .map_err(open_err)?;
        if !mode.0.eq_ignore_ascii_case("wal") {
            pool.close().await;
            return Err(open_err(sqlx::Error::Configuration(
                format!("journal_mode is {:?}, expected \"wal\"", mode.0).into(),
            )));
        }

        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                catalog: name,
                path: path.to_path_buf(),
                source,
            })?;

        Ok(Catalog {
            name,
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock
    /// up front (`BEGIN IMMEDIATE`), so a read-then-write transaction cannot fail
    /// with `SQLITE_BUSY` when upgrading its lock; waiting for the lock honours
    /// `busy_timeout`. Queries inside still lock rows they read-modify-write
    /// (first statement writes), which is what PostgreSQL needs.
    pub(crate) async fn begin_write(&self, what: &str) -> Result<Transaction<'static, Any>> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        };
        tx.map_err(|source| StoreError::Query {
            context: format!(
                "failed to begin transaction to {what} in {} catalog",
                self.name
            ),
            source,
        })
    }
}

/// `<dir>/<name>.db`
pub(crate) fn sqlite_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.db"))
}
