//! Input that only one backend would reject (PostgreSQL TEXT refuses `\0`,
//! SQLite stores it) gets the same answer on both: a `StoreError::Invalid`
//! naming the field, never a raw database error, and nothing is written.

use runway_store::StoreError;

use crate::open;

/// (app, bucket, key, what the message must name)
fn bad_kv_inputs() -> Vec<(String, String, String, &'static str)> {
    vec![
        ("a".into(), "b".into(), "k\0ey".into(), "key"),
        ("a".into(), "b\0".into(), "k".into(), "bucket"),
        ("a\0pp".into(), "b".into(), "k".into(), "app"),
        ("a".into(), "b".into(), "k".repeat(1025), "key"),
        ("a".into(), "b".repeat(129), "k".into(), "bucket"),
        ("a".into(), String::new(), "k".into(), "bucket"),
    ]
}

fn assert_invalid<T: std::fmt::Debug>(result: runway_store::Result<T>, field: &str, op: &str) {
    match result {
        Err(StoreError::Invalid(message)) => {
            assert!(
                message.contains(field),
                "{op}: message does not name the {field}: {message}"
            );
            assert!(
                message.len() < 600,
                "{op}: message echoes the whole input: {message}"
            );
        }
        other => panic!("{op}: expected StoreError::Invalid naming the {field}, got {other:?}"),
    }
}

async fn kv_bad_input_is_refused_the_same_way() {
    let (_dir, store) = open().await;
    for (app, bucket, key, field) in bad_kv_inputs() {
        let (app, bucket, key) = (app.as_str(), bucket.as_str(), key.as_str());
        assert_invalid(store.kv_set(app, bucket, key, b"v").await, field, "set");
        assert_invalid(store.kv_get(app, bucket, key).await, field, "get");
        assert_invalid(store.kv_exists(app, bucket, key).await, field, "exists");
        assert_invalid(store.kv_delete(app, bucket, key).await, field, "delete");
        assert_invalid(
            store.kv_increment(app, bucket, key, 1).await,
            field,
            "increment",
        );
        if field != "key" {
            assert_invalid(store.kv_keys(app, bucket, None, 10).await, field, "keys");
        }
    }
    // A cursor is a key too.
    assert_invalid(
        store.kv_keys("a", "b", Some("x\0"), 10).await,
        "cursor",
        "keys",
    );
    // Nothing was written, and good input still works.
    let (keys, _) = store.kv_keys("a", "b", None, 100).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    store
        .kv_set("a", "b", &"k".repeat(1024), b"v")
        .await
        .unwrap();
    store.close().await;
}

async fn property_with_nul_is_refused_and_nothing_changes() {
    let (_dir, store) = open().await;
    store
        .set_properties("app", &[("greeting".into(), Some("hello".into()))])
        .await
        .unwrap();
    // (app, changes, the field the refusal must name)
    type Case<'a> = (&'a str, Vec<(String, Option<String>)>, &'a str);
    let bad: Vec<Case> = vec![
        (
            "app",
            vec![
                ("greeting".into(), Some("changed".into())),
                ("motto".into(), Some("a\0b".into())),
            ],
            "motto",
        ),
        ("app", vec![("na\0me".into(), Some("x".into()))], "property"),
        ("a\0pp", vec![("greeting".into(), Some("x".into()))], "app"),
    ];
    for (app, changes, field) in bad {
        assert_invalid(
            store.set_properties(app, &changes).await,
            field,
            "set_properties",
        );
    }
    assert_invalid(store.properties("a\0pp").await, "app", "properties");
    let props = store.properties("app").await.unwrap();
    assert_eq!(props.len(), 1);
    assert_eq!(props["greeting"], "hello");
    store.close().await;
}

crate::both!(
    kv_bad_input_is_refused_the_same_way,
    property_with_nul_is_refused_and_nothing_changes,
);
