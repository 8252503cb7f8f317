use runway_api::v1::{OperationKind, Scope};
use runway_store::{LogQuery, NewLogEntry, Store};

use crate::{Guard, new_version, open};

async fn data_survives_close_and_reopen() {
    let (guard, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    let id = store
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(id, 3, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    store.kv_set("a", "b", "k", b"v").await.unwrap();
    store.set_setting("s", "v").await.unwrap();
    store
        .create_token("admin", Scope::Admin, "h")
        .await
        .unwrap();
    store
        .create_session("sess", "admin", runway_store::now_ms() + 60_000)
        .await
        .unwrap();
    store.log_sink().write(NewLogEntry {
        at_ms: 1,
        message: Some("before close".into()),
        ..Default::default()
    });
    // close() flushes pending log entries.
    store.close().await;
    store.close().await;

    if let Guard::Dir(dir) = &guard {
        for db in ["platform.db", "log.db", "session.db"] {
            assert!(dir.path().join(db).is_file(), "{db}");
        }
    }

    // Reopen twice: migrations are idempotent.
    for _ in 0..2 {
        let store = Store::open(&guard.location()).await.unwrap();
        assert_eq!(store.generation().await.unwrap(), 3);
        let a = store.app("a").await.unwrap().unwrap();
        assert_eq!(a.running_version.as_deref(), Some("1.0.0"));
        assert_eq!(
            store.kv_get("a", "b", "k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(store.setting("s").await.unwrap().as_deref(), Some("v"));
        assert!(store.token_by_hash("h").await.unwrap().is_some());
        assert!(store.session("sess").await.unwrap().is_some());
        let logs = store
            .logs(&LogQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message.as_deref(), Some("before close"));
        store.close().await;
    }
}

#[tokio::test]
async fn catalogs_use_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    store.set_setting("x", "y").await.unwrap();
    // A WAL database has its `-wal` file next to it while open.
    assert!(dir.path().join("platform.db-wal").exists());
    store.close().await;
}

#[tokio::test]
async fn open_fails_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be.
    std::fs::create_dir(dir.path().join("platform.db")).unwrap();
    let err = Store::open_sqlite(dir.path()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("failed to open platform catalog at") && msg.contains("platform.db"),
        "{msg}"
    );
}

async fn calls_after_close_fail_and_do_not_hang() {
    let (_guard, store) = open().await;
    let sink = store.log_sink();
    store.close().await;
    assert!(store.setting("x").await.is_err());
    sink.write(NewLogEntry::default());
    sink.flush().await;
    assert_eq!(sink.dropped(), 1);
}

#[tokio::test]
async fn unreachable_database_is_a_clear_error_without_the_password() {
    // Nothing listens on port 1.
    let err = Store::open("postgres://runway:hunter2@127.0.0.1:1/runway_prod")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("platform catalog")
            && msg.contains("127.0.0.1:1/runway_prod")
            && msg.contains("createdb")
            && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_database_is_a_clear_error() {
    let mut url = url::Url::parse(&crate::admin_url()).unwrap();
    url.set_path("runway_store_test_does_not_exist");
    let err = Store::open(url.as_str()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("runway_store_test_does_not_exist") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn postgres_catalogs_are_schemas_of_one_database() {
    let db = crate::PgDatabase::create().await;
    let store = Store::open(&db.url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    store.set_setting("x", "y").await.unwrap();
    store.close().await;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema IN ('platform', 'log', 'session') \
         AND table_name IN ('settings', 'log_entries', 'sessions') ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            ("log".to_string(), "log_entries".to_string()),
            ("platform".to_string(), "settings".to_string()),
            ("session".to_string(), "sessions".to_string()),
        ]
    );
}

crate::both!(
    data_survives_close_and_reopen,
    calls_after_close_fail_and_do_not_hang
);
