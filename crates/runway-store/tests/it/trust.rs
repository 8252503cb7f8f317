//! Issue 9 parts 6 and 7 in the catalogs: the console's signing keys
//! (rotation retires, expired retired keys stop being published, private
//! keys sealed), the environment's trusted console (replaced as a whole) and
//! its append-only audit log (filters).

use runway_api::trust::AuditOutcome;
use runway_store::{
    AuditFilter, ConsoleStore, NewAuditRow, SecretsKey, StoreError, TrustedKeyRecord, now_ms,
};

use crate::{BACKEND, Backend, Guard, PgDatabase};

async fn open_console() -> (Guard, ConsoleStore) {
    let guard = match BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite) {
        Backend::Sqlite => Guard::Dir(tempfile::tempdir().expect("temp dir")),
        Backend::Postgres => Guard::Database(PgDatabase::create().await),
    };
    let store = ConsoleStore::open(&guard.location()).await.unwrap();
    store
        .use_key(SecretsKey::from_bytes(
            [7; 32],
            std::path::Path::new("console.key"),
        ))
        .await
        .unwrap();
    (guard, store)
}

async fn signing_keys_rotate_and_expire() {
    let (guard, store) = open_console().await;
    assert!(store.current_signing_key().await.unwrap().is_none());
    store
        .rotate_signing_key("k1", "pub1", "aa01", now_ms() + 600_000)
        .await
        .unwrap();
    let current = store.current_signing_key().await.unwrap().unwrap();
    assert_eq!(current.record.kid, "k1");
    assert_eq!(current.private_pkcs8_hex, "aa01");
    // Rotating retires k1 until the given instant; both are published.
    store
        .rotate_signing_key("k2", "pub2", "aa02", now_ms() + 600_000)
        .await
        .unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys[0].kid == "k1" && keys[0].not_after_ms.is_some());
    assert!(keys[1].kid == "k2" && keys[1].not_after_ms.is_none());
    // A retired key past its not-after is no longer published, and is
    // deleted by the next rotation.
    store
        .rotate_signing_key("k3", "pub3", "aa03", now_ms() - 1)
        .await
        .unwrap();
    let kids: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k1", "k3"]);
    assert_eq!(
        store
            .current_signing_key()
            .await
            .unwrap()
            .unwrap()
            .record
            .kid,
        "k3"
    );
    // Sealed: another console key cannot open the private key.
    store.close().await;
    let again = ConsoleStore::open(&guard.location()).await.unwrap();
    again
        .use_key(SecretsKey::from_bytes(
            [8; 32],
            std::path::Path::new("other.key"),
        ))
        .await
        .unwrap();
    let err = again.current_signing_key().await.unwrap_err();
    assert!(
        matches!(err, StoreError::SecretsKey { .. }) && err.to_string().contains("signing key k3"),
        "{err}"
    );
}

async fn trusted_console_is_replaced_whole() {
    let (_guard, store) = crate::open().await;
    assert!(store.console_trust().await.unwrap().is_none());
    let key = |kid: &str, not_after: Option<i64>| TrustedKeyRecord {
        kid: kid.into(),
        public_key: format!("pub-{kid}"),
        not_after_ms: not_after,
    };
    store
        .set_console_trust("c1", "e1", &[key("a", None), key("b", Some(5))])
        .await
        .unwrap();
    store
        .set_console_trust("c1", "e1", &[key("c", None)])
        .await
        .unwrap();
    let trust = store.console_trust().await.unwrap().unwrap();
    assert_eq!(trust.console_id, "c1");
    assert_eq!(trust.audience, "e1");
    assert_eq!(trust.keys, vec![key("c", None)]);
}

async fn audit_rows_append_and_filter() {
    let (_guard, store) = crate::open().await;
    let row = |actor: &str, status: u16| NewAuditRow {
        actor: actor.into(),
        credential: None,
        address: "127.0.0.1".into(),
        action: "POST /apps/{app}/deployments".into(),
        target: "/_runway/api/v1/apps/notes/deployments".into(),
        status,
        detail: (status == 403).then(|| "needs change & deploy\0".to_string()),
        before: None,
        after: None,
    };
    store.append_audit(&row("console:ada", 403)).await.unwrap();
    store.append_audit(&row("token:admin", 201)).await.unwrap();
    store.append_audit(&row("anonymous", 401)).await.unwrap();
    let all = store
        .audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let actors: Vec<_> = all.iter().map(|r| r.actor.as_str()).collect();
    assert_eq!(actors, ["anonymous", "token:admin", "console:ada"]);
    let refused = store
        .audit(&AuditFilter {
            outcome: Some(AuditOutcome::Refused),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 2);
    let ada = store
        .audit(&AuditFilter {
            actor: Some("console:ada".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ada.len(), 1);
    assert_eq!(ada[0].outcome, AuditOutcome::Refused);
    // NUL is stored as U+FFFD on both backends.
    assert_eq!(
        ada[0].detail.as_deref(),
        Some("needs change & deploy\u{FFFD}")
    );
    let later = store
        .audit(&AuditFilter {
            since_ms: Some(now_ms() + 60_000),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(later.is_empty());

    // By app (its paths, not a longer name's), action text, any of several
    // actors, and before an instant; LIKE wildcards in a filter are text.
    let mut other = row("console:bob", 200);
    other.target = "/_runway/api/v1/apps/notes2/properties".into();
    other.action = "PUT /apps/{app}/properties".into();
    store.append_audit(&other).await.unwrap();
    let filtered = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit(&AuditFilter { limit: 100, ..f })
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.actor)
                .collect::<Vec<_>>()
        }
    };
    let notes = filtered(AuditFilter {
        app: Some("notes".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(notes, ["anonymous", "token:admin", "console:ada"]);
    let props = filtered(AuditFilter {
        action: Some("properties".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(props, ["console:bob"]);
    for wildcard in ["%", "_"] {
        let none = filtered(AuditFilter {
            action: Some(wildcard.into()),
            app: Some(wildcard.into()),
            ..AuditFilter::default()
        })
        .await;
        assert!(none.is_empty(), "{wildcard}: {none:?}");
    }
    let two = filtered(AuditFilter {
        actors: vec!["console:bob".into(), "token:admin".into()],
        outcome: Some(AuditOutcome::Done),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(two, ["console:bob", "token:admin"]);
    let before = filtered(AuditFilter {
        until_ms: Some(0),
        ..AuditFilter::default()
    })
    .await;
    assert!(before.is_empty());

    // Retention: rows older than the cut-off are deleted, newer ones kept.
    assert_eq!(store.prune_audit(0).await.unwrap(), 0);
    assert_eq!(store.prune_audit(now_ms() + 1).await.unwrap(), 4);
    assert!(filtered(AuditFilter::default()).await.is_empty());
}

crate::both!(
    signing_keys_rotate_and_expire,
    trusted_console_is_replaced_whole,
    audit_rows_append_and_filter,
);
