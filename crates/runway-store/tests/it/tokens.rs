use runway_api::v1::Scope;
use runway_store::StoreError;

use crate::open;

async fn create_lookup_conflict_revoke() {
    let (_dir, store) = open().await;
    let admin = store
        .create_token("admin", Scope::Admin, "h-admin")
        .await
        .unwrap();
    assert_eq!(admin.name, "admin");
    assert_eq!(admin.scope, Scope::Admin);
    assert!(admin.revoked_at_ms.is_none() && admin.last_used_at_ms.is_none());

    let err = store
        .create_token("admin", Scope::Read, "h-other")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(
        err.to_string()
            .contains("a token named \"admin\" already exists")
    );
    let err = store
        .create_token("ci", Scope::Read, "h-admin")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    let ci = store
        .create_token("ci", Scope::Deploy, "h-ci")
        .await
        .unwrap();
    assert_eq!(store.token_by_hash("h-ci").await.unwrap(), Some(ci.clone()));
    assert_eq!(store.token_by_hash("nope").await.unwrap(), None);

    store.touch_token(ci.id).await.unwrap();
    assert!(
        store
            .token_by_hash("h-ci")
            .await
            .unwrap()
            .unwrap()
            .last_used_at_ms
            .is_some()
    );

    // By id.
    assert!(store.revoke_token(&ci.id.to_string()).await.unwrap());
    assert!(!store.revoke_token(&ci.id.to_string()).await.unwrap());
    let revoked = store.token_by_hash("h-ci").await.unwrap().unwrap();
    assert!(
        revoked.revoked_at_ms.is_some(),
        "revoked tokens are still found"
    );
    // The name is free again once revoked.
    let ci2 = store
        .create_token("ci", Scope::Read, "h-ci2")
        .await
        .unwrap();
    assert_ne!(ci2.id, ci.id);

    // By name.
    assert!(store.revoke_token("ci").await.unwrap());
    assert!(!store.revoke_token("ci").await.unwrap());
    assert!(!store.revoke_token("nobody").await.unwrap());
    assert!(!store.revoke_token("999").await.unwrap());

    let all = store.tokens().await.unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|t| (t.name.as_str(), t.revoked_at_ms.is_some()))
        .collect();
    assert_eq!(names, [("admin", false), ("ci", true), ("ci", true)]);
    store.close().await;
}

async fn sessions_expire() {
    let (_dir, store) = open().await;
    let now = runway_store::now_ms();
    store
        .create_session("s1", "admin", now + 60_000)
        .await
        .unwrap();
    store.create_session("old", "admin", now - 1).await.unwrap();
    assert!(matches!(
        store.create_session("s1", "x", now + 1).await,
        Err(StoreError::Conflict(_))
    ));
    let s = store.session("s1").await.unwrap().unwrap();
    assert_eq!(s.subject, "admin");
    assert_eq!(s.expires_at_ms, now + 60_000);
    assert_eq!(store.session("old").await.unwrap(), None);
    assert_eq!(store.purge_expired_sessions().await.unwrap(), 1);
    store.delete_session("s1").await.unwrap();
    assert_eq!(store.session("s1").await.unwrap(), None);
    store.close().await;
}

async fn the_last_admin_token_cannot_be_revoked() {
    let (_dir, store) = open().await;
    let first = store
        .create_token("first", Scope::Admin, "h-1")
        .await
        .unwrap();
    store
        .create_token("reader", Scope::Read, "h-r")
        .await
        .unwrap();
    for by in [first.id.to_string(), "first".to_string()] {
        let err = store.revoke_token(&by).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("last admin token") && message.contains("create another admin token"),
            "{message}"
        );
    }
    assert!(
        store
            .token_by_hash("h-1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at_ms
            .is_none(),
        "a refused revocation changes nothing"
    );
    // Once there is another admin token, either may go, but not both.
    store
        .create_token("second", Scope::Admin, "h-2")
        .await
        .unwrap();
    assert!(store.revoke_token("first").await.unwrap());
    assert!(matches!(
        store.revoke_token("second").await,
        Err(StoreError::Conflict(_))
    ));
    // Tokens of other scopes are revoked as before.
    assert!(store.revoke_token("reader").await.unwrap());
    store.close().await;
}

crate::both!(
    create_lookup_conflict_revoke,
    sessions_expire,
    the_last_admin_token_cannot_be_revoked,
);
