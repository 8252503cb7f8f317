//! The console catalog: its own database (refusing an environment's, and
//! refused by one), principals and tokens, environments with sealed
//! credentials, pipelines, polls, versions (a key ↔ one digest) and plans.

use runway_store::console::apps::{ObservedApp, Poll};
use runway_store::console::environments::{FrontendSnapshot, NewEnvironment};
use runway_store::console::plans::{NewPlan, PlanLogKind, PlanOperation, PlanStatus};
use runway_store::console::{is_key, new_key};
use runway_store::{ConsoleStore, SecretsKey, Store, StoreError};

use crate::{BACKEND, Backend, Guard, PgDatabase};

async fn fresh() -> Guard {
    match BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite) {
        Backend::Sqlite => Guard::Dir(tempfile::tempdir().expect("temp dir")),
        Backend::Postgres => Guard::Database(PgDatabase::create().await),
    }
}

fn key() -> SecretsKey {
    SecretsKey::from_bytes([7; 32], std::path::Path::new("console.key"))
}

async fn open_console() -> (Guard, ConsoleStore) {
    let guard = fresh().await;
    let store = ConsoleStore::open(&guard.location())
        .await
        .expect("open console");
    store.use_key(key()).await.expect("key");
    (guard, store)
}

fn new_env(name: &str, pipeline: Option<(&str, i64)>) -> NewEnvironment {
    NewEnvironment {
        id: new_key(),
        name: name.into(),
        address: format!("http://127.0.0.1:1/{name}"),
        pipeline: pipeline.map(|(p, n)| (p.to_string(), n)),
        allow_insecure: false,
        two_step: false,
        credential: format!("rwt_secret_of_{name}"),
        credential_name: "console:x".into(),
        created_by: None,
    }
}

async fn console_and_environment_refuse_each_others_database() {
    // A console refuses an environment's catalogs…
    let guard = fresh().await;
    let env = Store::open(&guard.location()).await.unwrap();
    env.close().await;
    let err = ConsoleStore::open(&guard.location()).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongDatabase(_)), "{err}");
    assert!(
        err.to_string().contains("holds an environment's catalog"),
        "{err}"
    );

    // …and an environment refuses a console's; nothing is created.
    let guard = fresh().await;
    let console = ConsoleStore::open(&guard.location()).await.unwrap();
    let id = console.id().to_string();
    assert!(is_key(&id));
    console.close().await;
    let err = Store::open(&guard.location()).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongDatabase(_)), "{err}");
    assert!(err.to_string().contains("infrastructure console"), "{err}");
    if let Guard::Dir(dir) = &guard {
        assert!(!dir.path().join("platform.db").exists());
    }
    // The console reopens with the same identity.
    let console = ConsoleStore::open(&guard.location()).await.unwrap();
    assert_eq!(console.id(), id);
    console.close().await;
}

async fn principals_and_tokens() {
    let (_guard, store) = open_console().await;
    assert!(store.ensure_admin("h-admin").await.unwrap());
    assert!(
        !store.ensure_admin("h-other").await.unwrap(),
        "one admin, created once"
    );
    let (token, admin) = store
        .console_token_by_hash("h-admin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.name, "admin");
    assert!(token.revoked_at_ms.is_none());
    assert!(
        store
            .console_token_by_hash("h-other")
            .await
            .unwrap()
            .is_none()
    );

    let ci = store
        .create_service_account("ci", "the pipeline robot", "Administrator", Some(&admin.id))
        .await
        .unwrap();
    assert!(is_key(&ci.id));
    let err = store
        .create_service_account("ci", "", "Administrator", None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let t = store
        .create_console_token(&ci.id, "default", "h-ci")
        .await
        .unwrap();
    assert!(store.revoke_console_token(&ci.id, t.id).await.unwrap());
    assert!(!store.revoke_console_token(&ci.id, t.id).await.unwrap());
    let (revoked, _) = store.console_token_by_hash("h-ci").await.unwrap().unwrap();
    assert!(revoked.revoked_at_ms.is_some());

    store
        .create_console_token(&ci.id, "second", "h-ci2")
        .await
        .unwrap();
    assert!(store.disable_service_account("ci").await.unwrap());
    let (t2, p) = store.console_token_by_hash("h-ci2").await.unwrap().unwrap();
    assert!(t2.revoked_at_ms.is_some() && p.disabled_at_ms.is_some());
    let err = store
        .create_console_token(&ci.id, "third", "h-ci3")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    // The name is free again.
    store
        .create_service_account("ci", "", "Administrator", None)
        .await
        .unwrap();
}

async fn environments_pipelines_and_sealed_credentials() {
    let (guard, store) = open_console().await;
    let main = store.create_pipeline("main", "", None).await.unwrap();
    assert!(matches!(
        store.create_pipeline("main", "", None).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    let dev = store
        .add_environment(&new_env("dev", Some(("main", 1))))
        .await
        .unwrap();
    let test = store
        .add_environment(&new_env("test", Some(("main", 2))))
        .await
        .unwrap();
    assert_eq!(dev.pipeline.as_deref(), Some("main"));
    // Same name, taken place, unknown pipeline: refused, nothing stored.
    for (bad, what) in [
        (new_env("dev", None), "already registered"),
        (
            new_env("other", Some(("main", 2))),
            "is taken by environment \"test\"",
        ),
        (
            new_env("other", Some(("nope", 1))),
            "no pipeline named \"nope\"",
        ),
    ] {
        let err = store.add_environment(&bad).await.unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
    assert_eq!(store.environments().await.unwrap().len(), 2);
    let stages = store.pipeline_environments(&main.id).await.unwrap();
    assert_eq!(
        stages.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["dev", "test"]
    );

    // The credential is sealed at rest and opens with the key.
    assert_eq!(
        store.environment_credential(&dev.id).await.unwrap(),
        "rwt_secret_of_dev"
    );
    if let Guard::Dir(dir) = &guard {
        let raw = std::fs::read(dir.path().join("console.db")).unwrap();
        assert!(
            !raw.windows(14).any(|w| w == b"rwt_secret_of_"),
            "a credential is stored in plaintext"
        );
    }
    // Another key refuses to open the catalog's credentials.
    store.close().await;
    let again = ConsoleStore::open(&guard.location()).await.unwrap();
    let other = SecretsKey::from_bytes([9; 32], std::path::Path::new("other.key"));
    let err = again.use_key(other).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not open the credential of environment \"dev\""),
        "{err}"
    );
    again.use_key(key()).await.unwrap();

    // Removal is refused while a plan that is not finished uses it.
    let app_version = again
        .tag_version("notes", "1.0.0", "d1", "first", None, Some(&dev.id))
        .await
        .unwrap();
    let plan = again
        .create_plan(&NewPlan {
            id: new_key(),
            source_environment_id: dev.id.clone(),
            target_environment_id: test.id.clone(),
            notes: String::new(),
            two_step: false,
            allow_out_of_order: false,
            operations: vec![PlanOperation::Deploy {
                version_id: app_version.id.clone(),
                rollback: false,
            }],
            properties: vec![],
            created_by: None,
        })
        .await
        .unwrap();
    let err = again.remove_environment("test").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(err.to_string().contains(&plan.id), "{err}");
    assert!(
        again.environment("test").await.unwrap().is_some(),
        "nothing changed"
    );
    assert!(again.delete_plan(&plan.id).await.unwrap());
    let removed = again.remove_environment("test").await.unwrap();
    assert_eq!(removed.id, test.id);
    assert!(again.environment("test").await.unwrap().is_none());
    // Its name and place are free again.
    again
        .add_environment(&new_env("test", Some(("main", 2))))
        .await
        .unwrap();
    again.close().await;
}

async fn polls_record_versions_once_per_digest() {
    let (_guard, store) = open_console().await;
    let dev = store.add_environment(&new_env("dev", None)).await.unwrap();
    let prod = store.add_environment(&new_env("prod", None)).await.unwrap();
    let poll = |digest: &str| Poll {
        runway_version: "0.1.0".into(),
        environment_name: "dev".into(),
        generation: 3,
        frontends: vec![FrontendSnapshot {
            name: "fe-1".into(),
            address: "http://127.0.0.1:2".into(),
            state: runway_api::v1::FrontendState::Ready,
            generation: 3,
            enabled: true,
        }],
        apps: vec![ObservedApp {
            name: "notes".into(),
            description: Some("Notes".into()),
            version: Some("1.0.0".into()),
            digest: Some(digest.into()),
            status: runway_api::v1::AppStatus::Running,
            deployed_at_ms: Some(1),
        }],
    };
    let outcome = store.record_poll(&dev.id, &poll("d1")).await.unwrap();
    assert_eq!(outcome.new_versions, ["notes@1.0.0"]);
    let outcome = store.record_poll(&dev.id, &poll("d1")).await.unwrap();
    assert!(outcome.new_versions.is_empty(), "recorded once");
    // Other bytes under the same number are not that version.
    let outcome = store.record_poll(&prod.id, &poll("d2")).await.unwrap();
    assert_eq!(outcome.digest_mismatches, ["notes@1.0.0"]);
    let running = store.running().await.unwrap();
    let on = |env: &str| running.iter().find(|r| r.environment_id == env).unwrap();
    assert!(on(&dev.id).version_id.is_some());
    assert!(on(&prod.id).version_id.is_none());
    assert_eq!(on(&prod.id).digest.as_deref(), Some("d2"));

    let health = store.environment_health(&dev.id).await.unwrap().unwrap();
    assert!(health.reachable && health.generation == Some(3));
    assert_eq!(health.frontends.len(), 1);
    store
        .record_unreachable(&dev.id, "connection refused")
        .await
        .unwrap();
    let health = store.environment_health(&dev.id).await.unwrap().unwrap();
    assert!(!health.reachable);
    assert_eq!(health.error.as_deref(), Some("connection refused"));
    assert!(
        health.last_seen_at_ms.is_some(),
        "what was last seen is kept"
    );
    assert_eq!(health.frontends.len(), 1);

    // Tagging: the same digest again is idempotent; another digest is refused.
    let app = store.application("notes").await.unwrap().unwrap();
    let v = store.app_versions(&app.id).await.unwrap();
    assert_eq!(v.len(), 1);
    let again = store
        .tag_version("notes", "1.0.0", "d1", "", None, None)
        .await
        .unwrap();
    assert_eq!(again.id, v[0].id);
    let err = store
        .tag_version("notes", "1.0.0", "d2", "", None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .tag_version("notes", "1.0.1", "d1", "", None, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already notes@1.0.0"), "{err}");
}

async fn plans_status_log_and_one_active_per_target() {
    let (_guard, store) = open_console().await;
    let dev = store.add_environment(&new_env("dev", None)).await.unwrap();
    let test = store.add_environment(&new_env("test", None)).await.unwrap();
    let v = store
        .tag_version("notes", "1.0.0", "d1", "", None, Some(&dev.id))
        .await
        .unwrap();
    let plan = |props: Vec<(String, String, Option<String>)>| NewPlan {
        id: new_key(),
        source_environment_id: dev.id.clone(),
        target_environment_id: test.id.clone(),
        notes: "n".into(),
        two_step: true,
        allow_out_of_order: false,
        operations: vec![PlanOperation::Deploy {
            version_id: v.id.clone(),
            rollback: false,
        }],
        properties: props,
        created_by: None,
    };
    let a = store
        .create_plan(&plan(vec![(
            v.application_id.clone(),
            "api_url".into(),
            Some("https://x".into()),
        )]))
        .await
        .unwrap();
    assert_eq!(a.status, PlanStatus::Saved);
    assert_eq!(
        store.plan_properties(&a.id).await.unwrap(),
        [(
            v.application_id.clone(),
            "api_url".to_string(),
            Some("https://x".to_string())
        )]
    );
    assert_eq!(store.plan_operations(&a.id).await.unwrap().len(), 1);
    let b = store.create_plan(&plan(vec![])).await.unwrap();
    assert!(
        store
            .set_plan_status(&a.id, PlanStatus::Saved, PlanStatus::Running, Some(7))
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_plan_status(&a.id, PlanStatus::Saved, PlanStatus::Running, None)
            .await
            .unwrap()
    );
    let err = store
        .set_plan_status(&b.id, PlanStatus::Saved, PlanStatus::Running, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&a.id), "{err}");
    let err = store.delete_plan(&a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store
        .append_plan_log(&a.id, PlanLogKind::Info, "prepared")
        .await
        .unwrap();
    store
        .append_plan_log(&a.id, PlanLogKind::Error, "boom")
        .await
        .unwrap();
    let log = store.plan_log(&a.id, 0).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(store.plan_log(&a.id, log[0].id).await.unwrap().len(), 1);
    assert!(
        store
            .set_plan_status(
                &a.id,
                PlanStatus::Running,
                PlanStatus::FinishedWithErrors,
                None
            )
            .await
            .unwrap()
    );
    let done = store.plan(&a.id).await.unwrap().unwrap();
    assert!(done.finished_at_ms.is_some() && done.target_deployment_id == Some(7));
    assert!(
        store
            .set_plan_status(&b.id, PlanStatus::Saved, PlanStatus::Running, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.plans(None, None, Some(&test.id)).await.unwrap().len(),
        2
    );
    assert!(
        store
            .plans(None, None, Some(&dev.id))
            .await
            .unwrap()
            .is_empty()
    );
}

crate::both!(
    console_and_environment_refuse_each_others_database,
    principals_and_tokens,
    environments_pipelines_and_sealed_credentials,
    polls_record_versions_once_per_digest,
    plans_status_log_and_one_active_per_target,
);
