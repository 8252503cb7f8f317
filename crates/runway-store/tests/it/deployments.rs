use runway_api::fleet::{FrontendProgress, FrontendProgressState};
use runway_api::v1::{DeploymentOperation, DeploymentStatus, OperationKind};
use runway_store::{BeginDeployment, StoreError};

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
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    let d = &store.deployments(None, 10).await.unwrap()[0];
    assert_eq!((d.id, d.status), (id, DeploymentStatus::Running));

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
    assert_eq!(d.status, DeploymentStatus::Succeeded);
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
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(id, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();

    // The second app in the list fails: the first app's change must roll back.
    let id = store
        .begin_deployment("a", "2.0.0", OperationKind::Deploy)
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
    assert_eq!((d.id, d.status), (id, DeploymentStatus::Running));
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
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(id, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    let id2 = store
        .begin_deployment("a", "2.0.0", OperationKind::Deploy)
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
    assert_eq!(ds[0].status, DeploymentStatus::Failed);
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
    store.close().await;
}

async fn fail_unfinished_marks_running_only() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "d1"))
        .await
        .unwrap();
    let done = store
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(done, 1, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    let running = store
        .begin_deployment("a", "1.0.0", OperationKind::Config)
        .await
        .unwrap();
    // One deployment at a time: a second is refused while the first runs.
    let err = store
        .begin_deployment("b", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store
            .fail_unfinished_deployments("restarted")
            .await
            .unwrap(),
        1
    );
    let ds = store.deployments(None, 10).await.unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].id, running);
    assert!(
        ds[0].status == DeploymentStatus::Failed
            && ds[0].error.as_deref() == Some("restarted")
            && ds[0].finished_at_ms.is_some()
    );
    assert_eq!(ds[1].status, DeploymentStatus::Succeeded);
    assert_eq!(store.deployments(None, 1).await.unwrap().len(), 1);
    assert_eq!(store.fail_unfinished_deployments("again").await.unwrap(), 0);
    store.close().await;
}

fn op(app: &str, kind: OperationKind, version: &str, digest: Option<&str>) -> DeploymentOperation {
    DeploymentOperation {
        app: app.into(),
        kind,
        version: Some(version.into()),
        digest: digest.map(Into::into),
    }
}

async fn multi_app_deployment_keeps_its_operations_and_progress() {
    let (_dir, store) = open().await;
    for (app, digest) in [("a", "da1"), ("b", "db1")] {
        store
            .insert_version(&new_version(app, "1.0.0", digest))
            .await
            .unwrap();
    }
    let first = store
        .begin_deployment("b", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(first, 1, &[("b".into(), Some("1.0.0".into()))])
        .await
        .unwrap();

    let ops = [
        op("a", OperationKind::Deploy, "1.0.0", Some("da1")),
        op("b", OperationKind::Undeploy, "1.0.0", None),
    ];
    let BeginDeployment::Started(id) = store.begin_deployment_of(&ops).await.unwrap() else {
        panic!("nothing else runs");
    };
    let progress = vec![
        FrontendProgress {
            frontend: "fe1".into(),
            state: FrontendProgressState::Committed,
            fetched_bytes: 10,
            elapsed_ms: 3,
            error: None,
        },
        FrontendProgress {
            frontend: "fe2".into(),
            state: FrontendProgressState::Behind,
            fetched_bytes: 0,
            elapsed_ms: 0,
            error: Some("connection refused".into()),
        },
    ];
    store.set_deployment_progress(id, &progress).await.unwrap();
    // Replaced, not appended.
    store.set_deployment_progress(id, &progress).await.unwrap();
    store
        .commit_deployment(
            id,
            2,
            &[("a".into(), Some("1.0.0".into())), ("b".into(), None)],
        )
        .await
        .unwrap();

    let d = store.deployment(id).await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded);
    assert_eq!((d.app.as_str(), d.kind), ("a", OperationKind::Deploy));
    assert_eq!(d.operations, ops);
    assert_eq!(d.frontends, progress);
    assert_eq!(store.generation().await.unwrap(), 2);
    assert_eq!(
        store
            .app("a")
            .await
            .unwrap()
            .unwrap()
            .running_version
            .as_deref(),
        Some("1.0.0")
    );
    assert_eq!(store.app("b").await.unwrap().unwrap().running_version, None);
    // Listed under every app it switched, not only the first.
    let of_b: Vec<i64> = store
        .deployments(Some("b"), 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(of_b, vec![id, first]);
    assert!(store.deployment(id + 100).await.unwrap().is_none());
    store.close().await;
}

async fn prepared_deployment_blocks_others_until_committed_or_aborted() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "da1"))
        .await
        .unwrap();
    let ops = [op("a", OperationKind::Deploy, "1.0.0", Some("da1"))];
    let BeginDeployment::Started(id) = store.begin_deployment_of(&ops).await.unwrap() else {
        panic!("nothing else runs");
    };
    let generation = store.claim_generation(id).await.unwrap();
    store
        .prepare_deployment(id, generation, 1_000_000)
        .await
        .unwrap();
    let d = store.deployment(id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.generation, d.expires_at_ms),
        (
            DeploymentStatus::Prepared,
            Some(generation),
            Some(1_000_000)
        )
    );
    assert_eq!(
        store.active_deployment().await.unwrap(),
        Some((id, DeploymentStatus::Prepared))
    );
    assert_eq!(
        store.begin_deployment_of(&ops).await.unwrap(),
        BeginDeployment::Busy {
            id,
            status: DeploymentStatus::Prepared
        }
    );
    // A prepared deployment is committed only through `running` again.
    let err = store
        .commit_deployment(id, generation, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.generation().await.unwrap(), 0);

    // Aborted: nothing switched, and the next one may start.
    store
        .abort_deployment(id, "aborted by a test")
        .await
        .unwrap();
    let d = store.deployment(id).await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Aborted);
    assert_eq!(d.error.as_deref(), Some("aborted by a test"));
    assert_eq!(d.expires_at_ms, None);
    assert!(d.finished_at_ms.is_some());
    assert!(matches!(
        store.abort_deployment(id, "again").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.resume_deployment(id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.app("a").await.unwrap().unwrap().running_version, None);
    assert_eq!(store.active_deployment().await.unwrap(), None);

    // Prepared, then committed through `running`.
    let BeginDeployment::Started(id2) = store.begin_deployment_of(&ops).await.unwrap() else {
        panic!("the aborted one no longer blocks");
    };
    let generation = store.claim_generation(id2).await.unwrap();
    store
        .prepare_deployment(id2, generation, 1_000_000)
        .await
        .unwrap();
    store.resume_deployment(id2).await.unwrap();
    store
        .commit_deployment(id2, generation, &[("a".into(), Some("1.0.0".into()))])
        .await
        .unwrap();
    let d = store.deployment(id2).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.expires_at_ms),
        (DeploymentStatus::Succeeded, None)
    );
    assert_eq!(store.generation().await.unwrap(), generation);
    store.close().await;
}

async fn startup_aborts_prepared_deployments() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("a", "1.0.0", "da1"))
        .await
        .unwrap();
    let id = store
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store.prepare_deployment(id, 1, 5).await.unwrap();
    assert_eq!(
        store
            .fail_unfinished_deployments("restarted")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.abort_prepared_deployments("restarted").await.unwrap(),
        vec![id]
    );
    let d = store.deployment(id).await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Aborted);
    assert_eq!(d.error.as_deref(), Some("restarted"));
    assert!(
        store
            .abort_prepared_deployments("again")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.generation().await.unwrap(), 0);
    store.close().await;
}

crate::both!(
    commit_sets_running_version_and_generation_together,
    commit_with_unknown_version_changes_nothing,
    fail_leaves_running_version,
    fail_unfinished_marks_running_only,
    multi_app_deployment_keeps_its_operations_and_progress,
    prepared_deployment_blocks_others_until_committed_or_aborted,
    startup_aborts_prepared_deployments,
    migration_keeps_old_deployments_and_their_progress,
);

/// Migration 0007 moves each deployment's JSON progress into typed rows and
/// gives every old deployment its one operation, on both backends.
async fn migration_keeps_old_deployments_and_their_progress() {
    use sqlx::Executor as _;
    let backend = crate::BACKEND
        .try_with(|b| *b)
        .unwrap_or(crate::Backend::Sqlite);
    let (guard, url, dir) = match backend {
        crate::Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/platform.db?mode=rwc", dir.path().display());
            (crate::Guard::Dir(dir), url, "sqlite")
        }
        crate::Backend::Postgres => {
            let db = crate::PgDatabase::create().await;
            let url = db.url.clone();
            (crate::Guard::Database(db), url, "postgres")
        }
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if dir == "postgres" {
                    conn.execute("CREATE SCHEMA IF NOT EXISTS platform").await?;
                    conn.execute("SET search_path TO platform").await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir)
        .join("platform");
    let mut before = sqlx::migrate::Migrator::new(path).await.unwrap();
    before.migrations = std::borrow::Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 7)
            .cloned()
            .collect(),
    );
    before.run(&pool).await.unwrap();
    pool.execute(
        "INSERT INTO deployments \
         (app, version, kind, status, generation, started_at_ms, finished_at_ms, frontends) \
         VALUES ('a', '1.0.0', 'deploy', 'succeeded', 1, 10, 20, \
         '[{\"frontend\":\"fe1\",\"state\":\"committed\",\"fetched_bytes\":5,\"elapsed_ms\":2,\"error\":null},\
           {\"frontend\":\"fe2\",\"state\":\"behind\",\"fetched_bytes\":0,\"elapsed_ms\":0,\"error\":\"down\"}]')",
    )
    .await
    .unwrap();
    pool.execute(
        "INSERT INTO deployments (app, version, kind, status, started_at_ms) \
         VALUES ('b', '2.0.0', 'config', 'failed', 30)",
    )
    .await
    .unwrap();
    pool.close().await;

    let store = runway_store::Store::open(&guard.location()).await.unwrap();
    let ds = store.deployments(None, 10).await.unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(
        ds[0].operations,
        [op("b", OperationKind::Config, "2.0.0", None)]
    );
    assert!(ds[0].frontends.is_empty());
    let old = &ds[1];
    assert_eq!(old.status, DeploymentStatus::Succeeded);
    assert_eq!(
        old.operations,
        [op("a", OperationKind::Deploy, "1.0.0", None)]
    );
    assert_eq!(
        old.frontends,
        [
            FrontendProgress {
                frontend: "fe1".into(),
                state: FrontendProgressState::Committed,
                fetched_bytes: 5,
                elapsed_ms: 2,
                error: None,
            },
            FrontendProgress {
                frontend: "fe2".into(),
                state: FrontendProgressState::Behind,
                fetched_bytes: 0,
                elapsed_ms: 0,
                error: Some("down".into()),
            },
        ]
    );
    // New ids continue after the old ones.
    let id = store
        .begin_deployment("a", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    assert!(id > ds[0].id, "{id}");
    store.close().await;
    drop(guard);
}
