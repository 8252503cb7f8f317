//! Throwaway PostgreSQL databases for tests (Runway's own, and those of code
//! built on it). Not used by Runway itself.
//!
//! The server is `RUNWAY_TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres` (the development machine's
//! server, trust authentication).

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The server tests create their databases on (a URL of a database the user
/// can connect to and create databases from).
pub fn admin_url() -> String {
    std::env::var("RUNWAY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database, dropped (its connections closed first) when this is dropped.
pub struct TestDatabase {
    pub name: String,
    /// URL of the new database.
    pub url: String,
    admin: String,
}

impl TestDatabase {
    /// Creates `runway_test_<pid>_<n>` on the server at [`admin_url`].
    pub async fn create() -> TestDatabase {
        TestDatabase::create_on(&admin_url()).await
    }

    /// Creates a database on the server of `admin` (a URL of an existing database).
    pub async fn create_on(admin: &str) -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "runway_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach PostgreSQL at {admin} (set RUNWAY_TEST_DATABASE_URL): {e}")
            });
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = conn.close().await;
        let mut url = url::Url::parse(admin).expect("the admin URL parses");
        url.set_path(&name);
        TestDatabase {
            name,
            url: url.to_string(),
            admin: admin.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside or outside a runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            })
        })
        .join();
    }
}
