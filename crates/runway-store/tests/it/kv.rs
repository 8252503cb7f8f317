use runway_store::StoreError;

use crate::open;

async fn set_get_delete_exists() {
    let (_dir, store) = open().await;
    assert_eq!(store.kv_get("a", "b", "k").await.unwrap(), None);
    assert!(!store.kv_exists("a", "b", "k").await.unwrap());
    store.kv_set("a", "b", "k", &[0, 1, 2, 255]).await.unwrap();
    assert_eq!(
        store.kv_get("a", "b", "k").await.unwrap(),
        Some(vec![0, 1, 2, 255])
    );
    store.kv_set("a", "b", "k", b"").await.unwrap();
    assert_eq!(store.kv_get("a", "b", "k").await.unwrap(), Some(vec![]));
    assert!(store.kv_exists("a", "b", "k").await.unwrap());
    store.kv_delete("a", "b", "k").await.unwrap();
    store.kv_delete("a", "b", "k").await.unwrap();
    assert!(!store.kv_exists("a", "b", "k").await.unwrap());
    assert_eq!(store.kv_get("a", "b", "k").await.unwrap(), None);
    store.close().await;
}

async fn scoping_by_app_and_bucket() {
    let (_dir, store) = open().await;
    store
        .kv_set("app-a", "default", "secret", b"a")
        .await
        .unwrap();
    assert_eq!(
        store.kv_get("app-b", "default", "secret").await.unwrap(),
        None
    );
    assert!(!store.kv_exists("app-b", "default", "secret").await.unwrap());
    assert_eq!(
        store.kv_get("app-a", "other", "secret").await.unwrap(),
        None
    );
    let (keys, _) = store.kv_keys("app-b", "default", None, 100).await.unwrap();
    assert!(keys.is_empty());
    store.kv_delete("app-b", "default", "secret").await.unwrap();
    assert_eq!(
        store
            .kv_get("app-a", "default", "secret")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"a"[..])
    );
    store.close().await;
}

async fn keys_paging() {
    let (_dir, store) = open().await;
    for i in (0..25).rev() {
        store
            .kv_set("a", "b", &format!("key-{i:02}"), b"x")
            .await
            .unwrap();
    }
    store.kv_set("a", "other", "key-zz", b"x").await.unwrap();
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let (keys, next) = store
            .kv_keys("a", "b", cursor.as_deref(), 10)
            .await
            .unwrap();
        pages += 1;
        assert!(keys.len() <= 10);
        all.extend(keys);
        match next {
            Some(n) => {
                assert_eq!(Some(&n), all.last());
                cursor = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("key-{i:02}")).collect();
    assert_eq!(all, expected);

    // Exactly one page: no cursor.
    let (keys, next) = store.kv_keys("a", "b", None, 25).await.unwrap();
    assert_eq!((keys.len(), next), (25, None));
    store.close().await;
}

async fn increment_is_atomic_under_concurrency() {
    let (_dir, store) = open().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                store.kv_increment("a", "b", "counter", 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.kv_get("a", "b", "counter").await.unwrap().as_deref(),
        Some(&b"400"[..])
    );
    assert_eq!(
        store.kv_increment("a", "b", "counter", -401).await.unwrap(),
        -1
    );
    assert_eq!(store.kv_increment("a", "b", "fresh", 5).await.unwrap(), 5);
    store.close().await;
}

async fn increment_of_non_integer_fails_and_changes_nothing() {
    let (_dir, store) = open().await;
    store.kv_set("a", "b", "name", b"hello").await.unwrap();
    let err = store.kv_increment("a", "b", "name", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::NotAnInteger(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"name\"") && msg.contains("a") && msg.contains("\"b\""),
        "{msg}"
    );
    assert_eq!(
        store.kv_get("a", "b", "name").await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );

    store
        .kv_set("a", "b", "big", i64::MAX.to_string().as_bytes())
        .await
        .unwrap();
    let err = store.kv_increment("a", "b", "big", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Overflow(_)), "{err}");
    store.close().await;
}

crate::both!(
    increment_is_atomic_under_concurrency,
    set_get_delete_exists,
    scoping_by_app_and_bucket,
    keys_paging,
    increment_of_non_integer_fails_and_changes_nothing,
);
