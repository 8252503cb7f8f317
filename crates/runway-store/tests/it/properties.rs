use crate::open;

async fn set_and_unset_in_one_call() {
    let (_dir, store) = open().await;
    assert!(store.properties("app").await.unwrap().is_empty());
    store
        .set_properties(
            "app",
            &[
                ("a".into(), Some("1".into())),
                ("b".into(), Some("2".into())),
                ("c".into(), Some("3".into())),
            ],
        )
        .await
        .unwrap();
    store
        .set_properties(
            "app",
            &[
                ("a".into(), None),
                ("b".into(), Some("two".into())),
                ("d".into(), Some("4".into())),
                ("missing".into(), None),
            ],
        )
        .await
        .unwrap();
    let props = store.properties("app").await.unwrap();
    let got: Vec<(&str, &str)> = props
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, [("b", "two"), ("c", "3"), ("d", "4")]);
    assert!(store.properties("other").await.unwrap().is_empty());
    store.close().await;
}

crate::both!(set_and_unset_in_one_call,);
