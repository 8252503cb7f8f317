//! The console catalog: the infrastructure console's own database
//! (`runway console serve`), never shared with an environment.
//!
//! One catalog, `console`: a SQLite file `<dir>/console.db`, or the schema
//! `console` of a PostgreSQL database. Opening it refuses a database that
//! holds an environment's catalogs, and [`crate::Store`] refuses a database
//! that holds a console's (the seeds: LifeTime runs in a dedicated
//! environment with its own catalogs).
//!
//! * [`principals`] — who acts: the console's admin, service accounts and IT
//!   users, and their bearer tokens (SHA-256 only).
//! * [`users`] — IT users (argon2id password hashes), their login sessions
//!   (SHA-256 only) and the failed-login counters behind login throttling.
//! * [`audit`] — the audit log (append-only; filtered reads; pruning past
//!   the retention).
//! * [`roles`] — custom roles (levels per environment scope, the two
//!   rights; the built-in roles are not stored) and teams (apps, members
//!   each with a role).
//! * [`environments`] — registered environments (UUID key, address,
//!   pipeline and order, the sealed console credential), pipelines, and the
//!   last health poll of each.
//! * [`apps`] — applications and versions across environments (UUID keys; a
//!   version key ↔ exactly one package digest) and what each environment runs.
//! * [`plans`] — deployment plans, their operations, property values and
//!   status log.
//! * [`signing_keys`] — the Ed25519 keys that sign the tokens the console
//!   issues for environments (private keys sealed with the console key).

pub mod apps;
pub mod audit;
pub mod environments;
pub mod plans;
pub mod principals;
pub mod roles;
pub mod signing_keys;
pub mod users;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sqlx::Row;

use crate::db::{self, Backend, Catalog};
use crate::error::{Context, Result, StoreError};
use crate::{SecretsKey, now_ms};

/// Handle on a console's catalog. Cheap to clone.
#[derive(Clone)]
pub struct ConsoleStore {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    id: String,
    /// Seals environment credentials and plan property values; set once, at start.
    key: OnceLock<SecretsKey>,
}

impl std::fmt::Debug for ConsoleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleStore")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

impl ConsoleStore {
    /// Opens the console catalog at `location`: a `postgres://` URL, or a
    /// directory for the SQLite file `console.db`.
    pub async fn open(location: &str) -> Result<ConsoleStore> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            ConsoleStore::open_postgres(location).await
        } else {
            ConsoleStore::open_sqlite(Path::new(
                location.strip_prefix("sqlite:").unwrap_or(location),
            ))
            .await
        }
    }

    /// Opens (creating) `<dir>/console.db`. Refuses a directory that holds an
    /// environment's catalogs.
    pub async fn open_sqlite(dir: &Path) -> Result<ConsoleStore> {
        if let Some(found) = db::environment_files_in(dir) {
            return Err(StoreError::WrongDatabase(format!(
                "{} holds an environment's catalog ({}): a console needs a database of its own; \
                 give `--database` another directory (or a PostgreSQL URL of a database no \
                 environment uses)",
                dir.display(),
                found.display()
            )));
        }
        crate::files::create_private_dir(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let catalog = Catalog::open_sqlite(
            "console",
            &db::sqlite_path(dir, "console"),
            &db::SQLITE_CONSOLE,
        )
        .await?;
        ConsoleStore::assemble(catalog).await
    }

    /// Opens the schema `console` of the PostgreSQL database at `url`.
    /// Refuses a database that holds an environment's schemas.
    pub async fn open_postgres(url: &str) -> Result<ConsoleStore> {
        if let Some(schema) = db::schema_present(url, &db::ENVIRONMENT_SCHEMAS, "console").await? {
            return Err(StoreError::WrongDatabase(format!(
                "PostgreSQL database {} holds an environment's catalogs (schema {schema}): a \
                 console needs a database of its own; create one (createdb runway_console) and \
                 give its URL to `--database`",
                db::redact_url(url)
            )));
        }
        let catalog = Catalog::open_postgres("console", url, 6, &db::PG_CONSOLE).await?;
        ConsoleStore::assemble(catalog).await
    }

    /// Reads (or, on first open, creates) the console's identity row.
    async fn assemble(catalog: Catalog) -> Result<ConsoleStore> {
        let what = || "failed to read the console's identity".to_string();
        let mut tx = catalog.begin_write("create the console's identity").await?;
        let row = sqlx::query("SELECT id FROM console WHERE singleton = 1")
            .fetch_optional(&mut *tx)
            .await
            .context(what)?;
        let id = match row {
            Some(row) => row.try_get::<String, _>("id").context(what)?,
            None => {
                let id = new_key();
                sqlx::query(
                    "INSERT INTO console (singleton, id, created_at_ms) VALUES (1, $1, $2)",
                )
                .bind(&id)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .context(what)?;
                id
            }
        };
        tx.commit().await.context(what)?;
        Ok(ConsoleStore {
            inner: Arc::new(Inner {
                catalog,
                id,
                key: OnceLock::new(),
            }),
        })
    }

    /// The console's UUID (stable across restarts; names the credentials it mints).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Which backend the catalog is on: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.inner.catalog.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Sets the key environment credentials and plan property values are
    /// sealed with, and checks that it opens every credential already stored
    /// (a wrong key fails here, naming its file, rather than at the first poll).
    pub async fn use_key(&self, key: SecretsKey) -> Result<()> {
        let sealed = sqlx::query(
            "SELECT id, name, credential_sealed, credential_key_id FROM environments \
             WHERE removed_at_ms IS NULL",
        )
        .fetch_all(&self.catalog().pool)
        .await
        .context(|| "failed to read environment credentials".to_string())?;
        for row in &sealed {
            let decode = || "failed to decode an environment credential".to_string();
            let id: String = row.try_get("id").context(decode)?;
            let name: String = row.try_get("name").context(decode)?;
            let value: String = row.try_get("credential_sealed").context(decode)?;
            if key.open(&credential_context(&id), &value).is_none() {
                return Err(StoreError::SecretsKey {
                    path: key.path().to_path_buf(),
                    problem: format!(
                        "does not open the credential of environment {name:?}: this is not the \
                         key this console sealed it with; restore the console's key from a backup"
                    ),
                });
            }
        }
        self.inner.key.set(key).map_err(|_| {
            StoreError::Invalid("the console key is already set; it is set once, at start".into())
        })
    }

    pub(crate) fn key(&self) -> Result<&SecretsKey> {
        self.inner.key.get().ok_or_else(|| {
            StoreError::Invalid(
                "the console key is not set: call ConsoleStore::use_key at start".into(),
            )
        })
    }

    /// Closes the catalog. Later calls fail with a "pool closed" error.
    pub async fn close(&self) {
        self.inner.catalog.pool.close().await;
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }
}

/// A new random key (UUID v4, lowercase hyphenated), the form of every key
/// the console shows.
pub fn new_key() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut b = bytes;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `s` is a key in the form [`new_key`] makes (any UUID, any case).
pub fn is_key(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The associated data an environment's credential is sealed with.
pub(crate) fn credential_context(environment_id: &str) -> Vec<u8> {
    let mut context = b"runway console credential\0".to_vec();
    context.extend_from_slice(environment_id.as_bytes());
    context
}

/// `0`/`1` of a BIGINT boolean column.
pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// A console catalog on SQLite made by the first `migrations` migrations
/// only, with `seed` statements run on it, then opened (every migration
/// since applied): for tests that an upgrade keeps what was there.
#[cfg(test)]
pub(crate) async fn migrated_from(
    migrations: usize,
    seed: &[&str],
) -> (tempfile::TempDir, ConsoleStore) {
    use std::borrow::Cow;

    use sqlx::migrate::Migrator;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.db");
    let before = Migrator {
        migrations: Cow::Owned(crate::db::SQLITE_CONSOLE.migrations[..migrations].to_vec()),
        ..Migrator::DEFAULT
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    before.run(&pool).await.unwrap();
    for sql in seed {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let store = ConsoleStore::open_sqlite(dir.path()).await.unwrap();
    (dir, store)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_uuids() {
        let a = super::new_key();
        assert!(super::is_key(&a), "{a}");
        assert_ne!(a, super::new_key());
        assert_eq!(&a[14..15], "4");
        assert!(!super::is_key("not-a-key"));
    }
}
