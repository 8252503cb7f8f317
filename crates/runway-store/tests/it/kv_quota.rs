//! The per-app key-value quota: checked in the same transaction as the write,
//! so it holds under concurrency; a refused write changes nothing.

use runway_store::{KvQuota, KvUsage, StoreError};

use crate::open;

async fn quota_counts_keys_and_bytes() {
    let (_dir, store) = open().await;
    assert_eq!(store.kv_quota().await.unwrap(), KvQuota::DEFAULT);
    store
        .set_kv_quota(KvQuota {
            max_bytes: 100,
            max_keys: 3,
        })
        .await
        .unwrap();
    store.kv_set("a", "b", "k1", b"0123456789").await.unwrap();
    store.kv_set("a", "other", "k2", b"").await.unwrap();
    store.kv_increment("a", "b", "k3", 7).await.unwrap();
    assert_eq!(
        store.kv_usage("a").await.unwrap(),
        KvUsage {
            keys: 3,
            bytes: 2 + 10 + 2 + 2 + 1
        }
    );
    // A fourth key is refused, by set and by increment, and nothing changes.
    let err = store.kv_set("a", "b", "k4", b"x").await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
    assert!(err.to_string().contains("3 keys"), "{err}");
    let err = store.kv_increment("a", "b", "k4", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
    assert!(!store.kv_exists("a", "b", "k4").await.unwrap());
    // Another app has its own quota.
    store.kv_set("other-app", "b", "k4", b"x").await.unwrap();
    // Replacing a value counts only the difference.
    store.kv_set("a", "b", "k1", &[7u8; 80]).await.unwrap();
    let err = store.kv_set("a", "b", "k1", &[7u8; 96]).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
    assert!(err.to_string().contains("100 bytes"), "{err}");
    assert_eq!(
        store.kv_get("a", "b", "k1").await.unwrap().map(|v| v.len()),
        Some(80)
    );
    // Deleting frees room.
    store.kv_delete("a", "b", "k1").await.unwrap();
    store.kv_delete("a", "b", "k1").await.unwrap();
    assert_eq!(
        store.kv_usage("a").await.unwrap(),
        KvUsage { keys: 2, bytes: 5 }
    );
    store.kv_set("a", "b", "k4", &[1u8; 90]).await.unwrap();
    // Lowering the quota below the usage still lets the app shrink.
    store
        .set_kv_quota(KvQuota {
            max_bytes: 10,
            max_keys: 1,
        })
        .await
        .unwrap();
    store.kv_set("a", "b", "k4", b"small").await.unwrap();
    store.close().await;
}

async fn quota_holds_under_concurrent_writers() {
    let (_dir, store) = open().await;
    store
        .set_kv_quota(KvQuota {
            max_bytes: 1 << 20,
            max_keys: 5,
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.kv_set("a", "b", &format!("key-{i}"), b"v").await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::QuotaExceeded(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 5);
    let (keys, _) = store.kv_keys("a", "b", None, 100).await.unwrap();
    assert_eq!(keys.len(), 5);
    assert_eq!(store.kv_usage("a").await.unwrap().keys, 5);
    store.close().await;
}

crate::both!(
    quota_counts_keys_and_bytes,
    quota_holds_under_concurrent_writers,
);
