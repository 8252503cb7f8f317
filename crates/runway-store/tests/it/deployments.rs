use runway_store::StoreError;

use crate::{new_version, open};

async fn commit_sets_running_version_and_generation_together() {
    let (_dir, store) = open().await;
    assert_eq!(store.generation().await.unwrap(), 0);
    store
        .insert_version(&new_version("a", "1.0.0", "da1"))
        .await
        .unwrap();
    store
        .insert_version(&new_version("b", "1.0.0", "db1"))
        .await
        .unwrap();

    let id = store
        .begin_deployment("a", "1.0.0", "deploy")
        .await
        .unwrap();
    let d = &store.deployments(None, 10).await.unwrap()[0];
    assert_eq!((d.id, d.status.as_str()), (id, "running"));

    store
        .commit_deployment(
            id,
            7,
            &[
                ("a".into(), Some("1.0.0".into())),
                ("b".into(), Some("1.0.0".into())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.generation().await.unwrap(), 7);
    let a = store.app("a").await.unwrap().unwrap();
    assert_eq!(a.running_version.as_deref(), Some("1.0.0"));
    assert_eq!(a.running_digest.as_deref(), Some("da1"));
    assert!(a.deployed_at_ms.is_some());
    let d = &store.deployments(Some("a"), 10).await.unwrap()[0];
    assert_eq!(d.status, "succeeded");
    assert_eq!(d.generation, Some(7));
    assert!(d.finished_at_ms.is_some());

    // Committing again is refused and changes nothing.
    let err = store.commit_deployment(id, 8, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.generation().await.unwrap(), 7);
    store.close().await;
}

async fn commit_with_unknown_version_changes_nothing() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "da1"))
        .await
        .unwrap();
    store
        .insert_version(&new_version("a", "2.0.0", "da2"))
        .await
        .unwrap();
    let id = store
        .begin_deployment("a", "1.0.0", "deploy")
        .await
        .unwrap();
    store
        .commit_deployment(id, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();

    // The second app in the list fails: the first app's change must roll back.
    let id = store
        .begin_deployment("a", "2.0.0", "deploy")
        .await
        .unwrap();
    let err = store
        .commit_deployment(
            id,
            2,
            &[
                ("a".into(), Some("2.0.0".into())),
                ("ghost".into(), Some("1.0.0".into())),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("ghost"), "{err}");
    assert_eq!(store.generation().await.unwrap(), 1);
    let a = store.app("a").await.unwrap().unwrap();
    assert_eq!(a.running_version.as_deref(), Some("1.0.0"));
    assert_eq!(a.running_digest.as_deref(), Some("da1"));
    let d = &store.deployments(Some("a"), 1).await.unwrap()[0];
    assert_eq!((d.id, d.status.as_str()), (id, "running"));
    store.close().await;
}

async fn fail_leaves_running_version() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    store
        .insert_version(&new_version("a", "2.0.0", "d2"))
        .await
        .unwrap();
    let id = store
        .begin_deployment("a", "1.0.0", "deploy")
        .await
        .unwrap();
    store
        .commit_deployment(id, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    let id2 = store
        .begin_deployment("a", "2.0.0", "deploy")
        .await
        .unwrap();
    store
        .fail_deployment(id2, "stage failed on fe-1")
        .await
        .unwrap();
    let a = store.app("a").await.unwrap().unwrap();
    assert_eq!(a.running_version.as_deref(), Some("1.0.0"));
    assert_eq!(store.generation().await.unwrap(), 1);
    let ds = store.deployments(Some("a"), 10).await.unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].id, id2, "newest first");
    assert_eq!(ds[0].status, "failed");
    assert_eq!(ds[0].error.as_deref(), Some("stage failed on fe-1"));
    assert_eq!(ds[0].generation, None);
    assert!(matches!(
        store.fail_deployment(id2, "again").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.fail_deployment(9999, "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.begin_deployment("a", "1.0.0", "explode").await,
        Err(StoreError::Invalid(_))
    ));
    store.close().await;
}

async fn fail_unfinished_marks_running_only() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    let done = store
        .begin_deployment("a", "1.0.0", "deploy")
        .await
        .unwrap();
    store
        .commit_deployment(done, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    store
        .begin_deployment("a", "1.0.0", "config")
        .await
        .unwrap();
    store
        .begin_deployment("b", "1.0.0", "deploy")
        .await
        .unwrap();
    assert_eq!(
        store
            .fail_unfinished_deployments("restarted")
            .await
            .unwrap(),
        2
    );
    let ds = store.deployments(None, 10).await.unwrap();
    assert_eq!(ds.len(), 3);
    assert!(ds[..2].iter().all(|d| d.status == "failed"
        && d.error.as_deref() == Some("restarted")
        && d.finished_at_ms.is_some()));
    assert_eq!(ds[2].status, "succeeded");
    assert_eq!(store.deployments(None, 1).await.unwrap().len(), 1);
    assert_eq!(store.fail_unfinished_deployments("again").await.unwrap(), 0);
    store.close().await;
}

crate::both!(
    commit_sets_running_version_and_generation_together,
    commit_with_unknown_version_changes_nothing,
    fail_leaves_running_version,
    fail_unfinished_marks_running_only,
);
