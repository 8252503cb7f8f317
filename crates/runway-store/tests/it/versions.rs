use runway_api::v1::OperationKind;
use runway_store::{ArtifactRecord, DeleteVersion, InsertVersion};

use crate::{new_version, open};

async fn insert_created_unchanged_conflict() {
    let (_dir, store) = open().await;
    let v = new_version("notes", "1.0.0", "d1");
    assert_eq!(
        store.insert_version(&v).await.unwrap(),
        InsertVersion::Created
    );
    assert_eq!(
        store.insert_version(&v).await.unwrap(),
        InsertVersion::Unchanged
    );
    let other = new_version("notes", "1.0.0", "d2");
    assert_eq!(
        store.insert_version(&other).await.unwrap(),
        InsertVersion::Conflict {
            existing_digest: "d1".into()
        }
    );
    let rec = store.version("notes", "1.0.0").await.unwrap().unwrap();
    assert_eq!(rec.digest, "d1");
    assert_eq!(rec.component_digest, "c-d1");
    assert_eq!(rec.description.as_deref(), Some("notes 1.0.0"));
    assert_eq!(rec.size_bytes, 1234);
    assert!(rec.published_at_ms > 0);
    assert!(store.version("notes", "9.9.9").await.unwrap().is_none());

    let app = store.app("notes").await.unwrap().unwrap();
    assert_eq!(app.version_count, 1);
    assert_eq!(app.running_version, None);
    assert!(store.app("nope").await.unwrap().is_none());
    store.close().await;
}

async fn versions_equal_under_semver_precedence_are_one_version() {
    let (_dir, store) = open().await;
    assert_eq!(
        store
            .insert_version(&new_version("semver", "1.0.0+a", "da"))
            .await
            .unwrap(),
        InsertVersion::Created
    );
    for other in ["1.0.0+b", "1.0.0"] {
        assert_eq!(
            store
                .insert_version(&new_version("semver", other, "db"))
                .await
                .unwrap(),
            InsertVersion::SameVersion {
                existing_version: "1.0.0+a".into(),
                existing_digest: "da".into(),
            },
            "{other} is the same version as 1.0.0+a"
        );
    }
    // Lookups by any spelling of the version find it, as published.
    for spelling in ["1.0.0", "1.0.0+a", "1.0.0+b"] {
        let found = store.version("semver", spelling).await.unwrap();
        assert_eq!(
            found.map(|v| v.version).as_deref(),
            Some("1.0.0+a"),
            "{spelling}"
        );
    }
    // A pre-release or another patch is another version.
    assert_eq!(
        store
            .insert_version(&new_version("semver", "1.0.0-rc.1+a", "drc"))
            .await
            .unwrap(),
        InsertVersion::Created
    );
    assert!(store.version("semver", "1.0.1").await.unwrap().is_none());
    assert_eq!(
        store
            .version("semver", "1.0.0-rc.1")
            .await
            .unwrap()
            .unwrap()
            .digest,
        "drc"
    );
    assert_eq!(store.versions("semver").await.unwrap().len(), 2);
    store.close().await;
}

async fn concurrent_publish_of_same_version_creates_once() {
    let (_dir, store) = open().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let digest = if i % 2 == 0 { "same" } else { "other" };
            store
                .insert_version(&new_version("race", "1.0.0", digest))
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == InsertVersion::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(store.versions("race").await.unwrap().len(), 1);
    store.close().await;
}

async fn listing_order_and_apps() {
    let (_dir, store) = open().await;
    for v in ["1.0.0", "1.1.0", "0.9.0"] {
        store
            .insert_version(&new_version("b-app", v, &format!("d{v}")))
            .await
            .unwrap();
    }
    store
        .insert_version(&new_version("a-app", "1.0.0", "x"))
        .await
        .unwrap();
    let versions: Vec<String> = store
        .versions("b-app")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(
        versions,
        ["0.9.0", "1.1.0", "1.0.0"],
        "newest published first"
    );
    let apps = store.apps().await.unwrap();
    let names: Vec<_> = apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a-app", "b-app"]);
    assert_eq!(apps[1].version_count, 3);
    assert!(store.versions("nope").await.unwrap().is_empty());
    store.close().await;
}

async fn delete_running_refused_last_deletes_app_keeps_data() {
    let (_dir, store) = open().await;
    store
        .insert_version(&new_version("app", "1.0.0", "d1"))
        .await
        .unwrap();
    store
        .insert_version(&new_version("app", "2.0.0", "d2"))
        .await
        .unwrap();
    store.kv_set("app", "default", "k", b"v").await.unwrap();
    store
        .set_properties("app", &[("greeting".into(), Some("hi".into()))])
        .await
        .unwrap();
    let id = store
        .begin_deployment("app", "1.0.0", OperationKind::Deploy)
        .await
        .unwrap();
    store
        .commit_deployment(id, 1, &[("app".into(), Some("1.0.0".into()))])
        .await
        .unwrap();

    assert_eq!(
        store.delete_version("app", "1.0.0").await.unwrap(),
        DeleteVersion::Running
    );
    assert!(store.version("app", "1.0.0").await.unwrap().is_some());
    assert_eq!(
        store.delete_version("app", "3.0.0").await.unwrap(),
        DeleteVersion::NotFound
    );
    assert_eq!(
        store.delete_version("app", "2.0.0").await.unwrap(),
        DeleteVersion::Deleted
    );
    assert_eq!(store.app("app").await.unwrap().unwrap().version_count, 1);

    // Undeploy, then deleting the last version removes the app row.
    let id = store
        .begin_deployment("app", "1.0.0", OperationKind::Undeploy)
        .await
        .unwrap();
    store
        .commit_deployment(id, 2, &[("app".into(), None)])
        .await
        .unwrap();
    assert_eq!(
        store.delete_version("app", "1.0.0").await.unwrap(),
        DeleteVersion::Deleted
    );
    assert!(store.app("app").await.unwrap().is_none());
    assert!(store.apps().await.unwrap().is_empty());
    // Data and properties are kept.
    assert_eq!(
        store
            .kv_get("app", "default", "k")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(store.properties("app").await.unwrap()["greeting"], "hi");
    // Publishing again works.
    assert_eq!(
        store
            .insert_version(&new_version("app", "1.0.0", "d1"))
            .await
            .unwrap(),
        InsertVersion::Created
    );
    store.close().await;
}

async fn artifacts_are_idempotent() {
    let (_dir, store) = open().await;
    assert!(store.artifact("c1", "engine-a").await.unwrap().is_none());
    let a = ArtifactRecord {
        component_digest: "c1".into(),
        engine: "engine-a".into(),
        artifact_digest: "a1".into(),
        size_bytes: 10,
        compile_ms: 5,
        created_at_ms: 42,
    };
    store.insert_artifact(&a).await.unwrap();
    let again = ArtifactRecord {
        artifact_digest: "a2".into(),
        ..a.clone()
    };
    store.insert_artifact(&again).await.unwrap();
    assert_eq!(store.artifact("c1", "engine-a").await.unwrap(), Some(a));
    assert!(store.artifact("c1", "engine-b").await.unwrap().is_none());
    store.close().await;
}

async fn settings_roundtrip() {
    let (_dir, store) = open().await;
    assert_eq!(store.setting("name").await.unwrap(), None);
    store.set_setting("name", "dev").await.unwrap();
    store.set_setting("name", "prod").await.unwrap();
    assert_eq!(
        store.setting("name").await.unwrap().as_deref(),
        Some("prod")
    );
    store.close().await;
}

crate::both!(
    versions_equal_under_semver_precedence_are_one_version,
    concurrent_publish_of_same_version_creates_once,
    insert_created_unchanged_conflict,
    listing_order_and_apps,
    delete_running_refused_last_deletes_app_keeps_data,
    artifacts_are_idempotent,
    settings_roundtrip,
);
