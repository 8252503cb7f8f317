//! The store's error type. Every variant says what failed and, where it helps,
//! on which catalog file or which app / key.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The catalog directory could not be created.
    #[error("failed to create catalog directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A catalog database could not be opened or configured.
    #[error("failed to open {catalog} catalog at {path}: {source}")]
    Open {
        catalog: &'static str,
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// A PostgreSQL catalog could not be reached or opened. `url` has no password.
    /// (`cause` is in the message, so it is not chained a second time.)
    #[error(
        "failed to open the {catalog} catalog in PostgreSQL database {url}: {cause}; \
         check that the server is running and the database exists \
         (createdb -h HOST -U USER DATABASE), and the URL's user, host and port"
    )]
    OpenDatabase {
        catalog: &'static str,
        url: String,
        cause: sqlx::Error,
    },
    /// A PostgreSQL catalog's migrations could not be applied.
    #[error("failed to migrate the {catalog} catalog in PostgreSQL database {url}: {cause}")]
    MigrateDatabase {
        catalog: &'static str,
        url: String,
        cause: sqlx::migrate::MigrateError,
    },
    /// A catalog's migrations could not be applied.
    #[error("failed to migrate {catalog} catalog at {path}: {source}")]
    Migrate {
        catalog: &'static str,
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The database belongs to the other kind of role: a console's catalog
    /// where an environment's was expected, or the reverse. Nothing was created.
    #[error("{0}")]
    WrongDatabase(String),
    /// A query failed; `context` says which operation on which object.
    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    /// The secrets key is missing, unreadable, malformed, or not the key the
    /// catalog's secret values were encrypted with. Names the key file.
    #[error("secrets key {path}: {problem}")]
    SecretsKey { path: PathBuf, problem: String },
    /// The change conflicts with existing data (e.g. a duplicate token name).
    #[error("{0}")]
    Conflict(String),
    /// Something the operation needs does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An argument is not acceptable (e.g. an unknown deployment kind).
    #[error("{0}")]
    Invalid(String),
    /// `kv_increment` found a value that is not a decimal 64-bit integer.
    #[error("{0}")]
    NotAnInteger(String),
    /// `kv_increment` would overflow a 64-bit integer.
    #[error("{0}")]
    Overflow(String),
    /// A key-value write would take the app past its quota (keys or bytes);
    /// nothing changed.
    #[error("{0}")]
    QuotaExceeded(String),
}

/// Attaches "what failed" to a raw sqlx error.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, sqlx::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Query {
            context: what(),
            source,
        })
    }
}

/// Whether a sqlx error is a unique-constraint violation (any backend).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
