//! Integration tests of `runway-store` against real SQLite files and the real
//! PostgreSQL server (`RUNWAY_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), a throwaway database per
//! test. Tests listed in [`both!`] run once per backend.

mod bad_input;
mod console;
mod deployments;
mod email;
mod frontends;
mod jobs;
mod kv;
mod kv_quota;
mod lease;
mod logs;
mod persistence;
mod properties;
mod secrets;
mod tokens;
mod trust;
mod versions;
mod zones;

use runway_store::{NewVersion, Store};
use tempfile::TempDir;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The backend of the running test (set by [`both!`]; SQLite otherwise).
    pub static BACKEND: Backend;
}

/// Generates, for each listed `async fn`, one multi-threaded `#[tokio::test]` per backend:
/// `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::BACKEND.scope($crate::Backend::Sqlite, super::$name()).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::BACKEND.scope($crate::Backend::Postgres, super::$name()).await
            })*
        }
    };
}

/// Keeps a test's catalogs alive; drops them (directory or database) at the end.
pub enum Guard {
    Dir(TempDir),
    Database(PgDatabase),
}

impl Guard {
    /// What [`Store::open`] takes to open the same catalogs again.
    pub fn location(&self) -> String {
        match self {
            Guard::Dir(dir) => dir.path().display().to_string(),
            Guard::Database(db) => db.url.clone(),
        }
    }
}

/// A store on fresh catalogs of the running test's backend.
pub async fn open() -> (Guard, Store) {
    let guard = match BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite) {
        Backend::Sqlite => Guard::Dir(tempfile::tempdir().expect("temp dir")),
        Backend::Postgres => Guard::Database(PgDatabase::create().await),
    };
    let store = Store::open(&guard.location()).await.expect("open store");
    (guard, store)
}

pub use runway_store::testing::{TestDatabase as PgDatabase, admin_url};
pub fn new_version(app: &str, version: &str, digest: &str) -> NewVersion {
    NewVersion {
        app: app.to_string(),
        version: version.to_string(),
        digest: digest.to_string(),
        component_digest: format!("c-{digest}"),
        description: Some(format!("{app} {version}")),
        manifest_toml: format!("[app]\nname = \"{app}\"\nversion = \"{version}\"\n"),
        size_bytes: 1234,
    }
}
