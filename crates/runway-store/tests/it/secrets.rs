//! Secret property values are encrypted at rest: the raw catalog row never
//! holds them, a wrong key is refused by name, marks survive un-declaring.

use runway_store::{SecretsKey, Store, StoreError};
use std::str::FromStr;

use sqlx::Row;

use crate::{Guard, open};

/// The raw `(value, key_id)` of a property row, read past the store.
async fn raw_row(guard: &Guard, app: &str, key: &str) -> Option<(String, Option<String>)> {
    use sqlx::ConnectOptions;
    let sql = "SELECT value, key_id FROM properties WHERE app = $1 AND key = $2";
    match guard {
        Guard::Dir(dir) => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("platform.db"))
                .connect()
                .await
                .unwrap();
            sqlx::query(sql)
                .bind(app)
                .bind(key)
                .fetch_optional(&mut conn)
                .await
                .unwrap()
                .map(|r| (r.get::<String, _>(0), r.get::<Option<String>, _>(1)))
        }
        Guard::Database(db) => {
            let mut conn: sqlx::PgConnection = sqlx::postgres::PgConnectOptions::from_str(&db.url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            sqlx::query(&sql.replace("FROM properties", "FROM platform.properties"))
                .bind(app)
                .bind(key)
                .fetch_optional(&mut conn)
                .await
                .unwrap()
                .map(|r| (r.get::<String, _>(0), r.get::<Option<String>, _>(1)))
        }
    }
}

fn key_file(dir: &std::path::Path, name: &str, byte: u8) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", hex_byte(byte).repeat(32))).unwrap();
    path
}

fn hex_byte(b: u8) -> String {
    format!("{b:02x}")
}

async fn secret_values_are_encrypted_in_the_raw_row() {
    let keys = tempfile::tempdir().unwrap();
    let (guard, store) = open().await;
    let key = SecretsKey::load(&key_file(keys.path(), "a.key", 7), false).unwrap();
    let id = key.id().to_string();
    store.use_secrets_key(key).await.unwrap();
    store
        .mark_secret_properties("app", &["token".into()], true)
        .await
        .unwrap();
    let secret = "hunter2-secret-Value";
    store
        .set_properties(
            "app",
            &[
                ("token".into(), Some(secret.into())),
                ("title".into(), Some("plain title".into())),
            ],
        )
        .await
        .unwrap();
    let (value, key_id) = raw_row(&guard, "app", "token").await.unwrap();
    assert!(!value.contains(secret), "stored in plaintext: {value}");
    assert_eq!(key_id.as_deref(), Some(id.as_str()));
    // Non-secret values stay readable.
    assert_eq!(
        raw_row(&guard, "app", "title").await.unwrap(),
        ("plain title".to_string(), None)
    );
    // The store reads them back.
    let props = store.properties("app").await.unwrap();
    assert_eq!(props["token"], secret);
    assert_eq!(store.secret_marks("app").await.unwrap().len(), 1);
    store.close().await;

    // Another key: refused, naming its file; no key: the secret stays unreadable.
    let store = Store::open(&guard.location()).await.unwrap();
    let wrong = key_file(keys.path(), "wrong.key", 9);
    match store
        .use_secrets_key(SecretsKey::load(&wrong, false).unwrap())
        .await
    {
        Err(e @ StoreError::SecretsKey { .. }) => {
            assert!(e.to_string().contains("wrong.key"), "{e}")
        }
        other => panic!("a wrong key was accepted: {other:?}"),
    }
    assert!(store.properties("app").await.is_err());
    store.close().await;
}

async fn plaintext_values_are_encrypted_when_marked_and_decrypted_when_unmarked() {
    let keys = tempfile::tempdir().unwrap();
    let (guard, store) = open().await;
    store
        .use_secrets_key(SecretsKey::load(&key_file(keys.path(), "k", 1), false).unwrap())
        .await
        .unwrap();
    let secret = "was-plaintext-before";
    store
        .set_properties("app", &[("token".into(), Some(secret.into()))])
        .await
        .unwrap();
    assert_eq!(raw_row(&guard, "app", "token").await.unwrap().0, secret);

    store
        .mark_secret_properties("app", &["token".into()], false)
        .await
        .unwrap();
    let (value, key_id) = raw_row(&guard, "app", "token").await.unwrap();
    assert!(key_id.is_some() && !value.contains(secret), "{value}");
    assert_eq!(store.properties("app").await.unwrap()["token"], secret);

    // Un-marked by an admin: plaintext again, and marks recovered from old
    // manifests (without overrule) do not undo that.
    store.unmark_secret_property("app", "token").await.unwrap();
    assert_eq!(
        raw_row(&guard, "app", "token").await.unwrap(),
        (secret.to_string(), None)
    );
    store
        .mark_secret_properties("app", &["token".into()], false)
        .await
        .unwrap();
    assert!(store.secret_marks("app").await.unwrap().is_empty());
    // A new version that declares it secret again does.
    store
        .mark_secret_properties("app", &["token".into()], true)
        .await
        .unwrap();
    assert!(raw_row(&guard, "app", "token").await.unwrap().1.is_some());
    store.close().await;
}

async fn a_store_without_the_key_cannot_write_a_secret() {
    let (_guard, store) = open().await;
    store
        .mark_secret_properties("app", &["token".into()], true)
        .await
        .unwrap();
    let err = store
        .set_properties("app", &[("token".into(), Some("x".into()))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no secrets key"), "{err}");
    assert!(store.properties("app").await.unwrap().is_empty());
    store.close().await;
}

crate::both!(
    secret_values_are_encrypted_in_the_raw_row,
    plaintext_values_are_encrypted_when_marked_and_decrypted_when_unmarked,
    a_store_without_the_key_cannot_write_a_secret,
);

#[test]
fn a_new_key_file_is_created_private_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.key");
    let created = SecretsKey::load(&path, true).unwrap();
    let again = SecretsKey::load(&path, false).unwrap();
    assert_eq!(created.id(), again.id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let missing = dir.path().join("missing.key");
    let err = SecretsKey::load(&missing, false).unwrap_err().to_string();
    assert!(
        err.contains("missing.key") && err.contains("does not exist"),
        "{err}"
    );
    std::fs::write(&path, "not hex").unwrap();
    let err = SecretsKey::load(&path, false).unwrap_err().to_string();
    assert!(err.contains("64 hex digits"), "{err}");
}
