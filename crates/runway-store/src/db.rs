//! Opening a catalog: connection options, pool, journal mode and migrations.
//!
//! All catalogs are reached through sqlx's `Any` driver so the same queries run
//! on SQLite and PostgreSQL. Only this module (and the per-backend migration
//! directories) knows which backend is behind a pool.
//!
//! On PostgreSQL an environment is one database with three schemas,
//! `platform`, `log` and `session`; each catalog's pool pins its
//! `search_path` to its schema, so the SQL is the same as on SQLite, where
//! each catalog is its own file. Several environments share a server by
//! using one database each.

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
    Postgres,
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
pub(crate) static PG_PLATFORM: Migrator = sqlx::migrate!("./migrations/postgres/platform");
pub(crate) static PG_LOG: Migrator = sqlx::migrate!("./migrations/postgres/log");
pub(crate) static PG_SESSION: Migrator = sqlx::migrate!("./migrations/postgres/session");
pub(crate) static SQLITE_CONSOLE: Migrator = sqlx::migrate!("./migrations/sqlite/console");
pub(crate) static PG_CONSOLE: Migrator = sqlx::migrate!("./migrations/postgres/console");

/// The catalogs of an environment (SQLite files / PostgreSQL schemas).
pub(crate) const ENVIRONMENT_SCHEMAS: [&str; 3] = ["platform", "log", "session"];
/// The catalog of a console.
pub(crate) const CONSOLE_SCHEMAS: [&str; 1] = ["console"];

/// The first of `names`' SQLite catalog files that exists in `dir`.
fn catalog_file_in(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .map(|name| sqlite_path(dir, name))
        .find(|path| path.exists())
}

/// An environment's catalog file in `dir`, if there is one.
pub(crate) fn environment_files_in(dir: &Path) -> Option<PathBuf> {
    catalog_file_in(dir, &ENVIRONMENT_SCHEMAS)
}

/// A console's catalog file in `dir`, if there is one.
pub(crate) fn console_file_in(dir: &Path) -> Option<PathBuf> {
    catalog_file_in(dir, &CONSOLE_SCHEMAS)
}

/// The first of `schemas` that exists in the PostgreSQL database at `url`.
/// `opening` names the catalog the caller is opening, for the error if the
/// database cannot be reached.
pub(crate) async fn schema_present(
    url: &str,
    schemas: &[&'static str],
    opening: &'static str,
) -> Result<Option<String>> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let shown = redact_url(url);
    let open_err = |cause| StoreError::OpenDatabase {
        catalog: opening,
        url: shown.clone(),
        cause,
    };
    let options = AnyConnectOptions::from_url(&url.parse().map_err(|e| {
        open_err(sqlx::Error::Configuration(
            format!("not a URL ({e}); use postgres://user[:password]@host[:port]/database").into(),
        ))
    })?)
    .map_err(open_err)?;
    let mut conn = tokio::time::timeout(
        PG_CONNECT_TIMEOUT,
        sqlx::AnyConnection::connect_with(&options),
    )
    .await
    .map_err(|_| open_err(sqlx::Error::PoolTimedOut))?
    .map_err(open_err)?;
    let mut found = None;
    for schema in schemas {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM pg_namespace WHERE nspname = $1")
            .bind(*schema)
            .fetch_one(&mut conn)
            .await
            .and_then(|row| row.try_get::<i64, _>("n"))
            .map_err(open_err)?;
        if row > 0 {
            found = Some((*schema).to_string());
            break;
        }
    }
    let _ = conn.close().await;
    Ok(found)
}

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
        // Catalog files are readable by their owner only: created 0600
        // before SQLite opens them (its WAL and shared-memory files take the
        // database file's mode), tightened if an older start made them wider.
        let io_err = |e: std::io::Error| open_err(sqlx::Error::Io(e));
        crate::files::make_private_file(path, true).map_err(io_err)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            crate::files::make_private_file(Path::new(&side), false).map_err(io_err)?;
        }
        let url = sqlite.to_url_lossy();
        let options = AnyConnectOptions::from_url(&url).map_err(open_err)?;

        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // The platform catalog holds secrets (encrypted, but their
                    // plaintext may have been stored by an older version):
                    // deleted and overwritten content is zeroed, not left in
                    // free pages.
                    if name == "platform" {
                        conn.execute("PRAGMA secure_delete = ON").await?;
                    }
                    // Per-connection settings the URL cannot carry. `foreign_keys`
                    // and `busy_timeout` are repeated so they do not depend on
                    // sqlx's defaults.
                    for pragma in [
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA synchronous = NORMAL",
                        // Statement journals of multi-row inserts in memory,
                        // not in temporary files (a syscall per page).
                        "PRAGMA temp_store = MEMORY",
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

    /// Opens the catalog `schema` in the PostgreSQL database at `url`: creates
    /// the schema if missing, pins every connection's `search_path` to it and
    /// applies `migrator` (sqlx serializes concurrent migrators with an
    /// advisory lock, so front-ends and the controller may start together).
    pub(crate) async fn open_postgres(
        schema: &'static str,
        url: &str,
        max_connections: u32,
        migrator: &'static Migrator,
    ) -> Result<Catalog> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let open_err = |cause| StoreError::OpenDatabase {
            catalog: schema,
            url: shown.clone(),
            cause,
        };
        let options = AnyConnectOptions::from_url(&url.parse().map_err(|e| {
            open_err(sqlx::Error::Configuration(
                format!("not a URL ({e}); use postgres://user[:password]@host[:port]/database")
                    .into(),
            ))
        })?)
        .map_err(open_err)?;

        // The schema must exist before a connection can be pinned to it.
        {
            use sqlx::Connection;
            let mut conn = tokio::time::timeout(
                PG_CONNECT_TIMEOUT,
                sqlx::AnyConnection::connect_with(&options),
            )
            .await
            .map_err(|_| open_err(sqlx::Error::PoolTimedOut))?
            .map_err(open_err)?;
            let created = conn
                .execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
                .await;
            // Two processes creating the schema at once: one of them loses the
            // race on the catalog's unique index, and the schema exists.
            if let Err(e) = created
                && !crate::error::is_unique_violation(&e)
            {
                return Err(open_err(e));
            }
            let _ = conn.close().await;
        }

        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(PG_CONNECT_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(format!("SET search_path TO {schema}").as_str())
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_err)?;
        if let Err(cause) = migrator.run(&pool).await {
            pool.close().await;
            return Err(StoreError::MigrateDatabase {
                catalog: schema,
                url: shown,
                cause,
            });
        }
        Ok(Catalog {
            name: schema,
            pool,
            backend: Backend::Postgres,
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
            Backend::Postgres => self.pool.begin().await,
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

/// How long opening a PostgreSQL connection (or waiting for a pooled one) may take.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `url` without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// `<dir>/<name>.db`
pub(crate) fn sqlite_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.db"))
}
