//! The environment API an infrastructure console drives (issue 8, part 5),
//! over real HTTP: packages by digest, multi-app deployments in one
//! generation, the dry run and its problem codes, prepare / commit / abort
//! with expiry and restart, undeploy; on SQLite and on a farm on PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use runway_api::fleet::FrontendProgressState;
use runway_api::v1::{
    AppStatus, CreateToken, Deployment, DeploymentRequest, DeploymentStatus, LogKind,
    LogQueryParams, OperationKind, OperationRequest, PREPARED_DEPLOYMENT_TTL_MS, ProblemCode,
    Scope,
};
use runway_manifest::Package;

use crate::farm_support::{Farm, run, served_generation, wait_200};
use crate::support::{TestEnv, package, with_version};

/// `package` as version `version`, with a static file `version.txt` saying
/// so, so a response tells which version served it.
fn versioned(package: &Package, version: &str, edit: impl FnOnce(String) -> String) -> Package {
    let manifest = edit(with_version(&package.manifest_toml, version));
    let mut files = package.static_files.clone();
    files.insert("version.txt".into(), version.as_bytes().to_vec());
    Package::from_parts(manifest, package.component.clone(), files).expect("valid package")
}

fn deploy(app: &str, version: &str) -> OperationRequest {
    OperationRequest::Deploy {
        app: app.into(),
        version: version.into(),
    }
}

fn request(operations: Vec<OperationRequest>) -> DeploymentRequest {
    DeploymentRequest {
        operations,
        ..DeploymentRequest::default()
    }
}

/// Publishes without deploying.
async fn upload(env: &TestEnv, package: &Package) {
    env.client
        .publish(package.to_bytes(), false, None)
        .await
        .expect("publish succeeds");
}

/// What `/APP/version.txt` answers: (status, body).
async fn served(env: &TestEnv, app: &str) -> (u16, String) {
    env.get_text(&format!("/{app}/version.txt")).await
}

/// POSTs `body` to an API path with the admin token: (status, JSON body).
async fn post_json(
    env: &TestEnv,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = env
        .http
        .post(format!("{}/_runway/api/v1{path}", env.url))
        .bearer_auth(&env.token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn token(env: &TestEnv, name: &str, scope: Scope) -> runway_client::Client {
    let created = env
        .client
        .create_token(&CreateToken {
            name: name.into(),
            scope,
        })
        .await
        .unwrap();
    runway_client::Client::new(&env.url, Some(created.token)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packages_by_digest_download_import_and_refuse_a_mismatch() {
    let dev = TestEnv::start().await;
    let test = TestEnv::start().await;
    let hello = versioned(&package("examples/hello"), "0.1.0", |m| m);
    let notes = package("examples/notes");
    let digest = hello.digest.to_string();
    upload(&dev, &hello).await;

    // Download: the exact bytes that were published.
    assert!(dev.client.has_package(&digest).await.unwrap());
    let bytes = dev.client.package(&digest).await.unwrap();
    assert_eq!(bytes, Bytes::from(hello.to_bytes()));
    let unknown = notes.digest.to_string();
    assert!(!dev.client.has_package(&unknown).await.unwrap());
    let e = dev.client.package(&unknown).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("package_not_found")),
        "{e}"
    );
    let e = dev.client.package("sha256:nothex").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(400), Some("invalid_digest")),
        "{e}"
    );

    // A package whose bytes are not the digest named is refused, and
    // nothing is stored: no version, no package file, no temporary file.
    assert!(!test.client.has_package(&digest).await.unwrap());
    let e = test
        .client
        .import_package(&digest, Bytes::from(notes.to_bytes()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(400), Some("digest_mismatch")),
        "{e}"
    );
    assert!(e.to_string().contains(&notes.digest.to_string()), "{e}");
    assert!(test.client.apps().await.unwrap().is_empty());
    let packages: Vec<_> = std::fs::read_dir(test.data_dir().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(packages.is_empty(), "{packages:?}");
    let raw = test
        .http
        .put(format!("{}/_runway/api/v1/packages/{digest}", test.url))
        .bearer_auth(&test.token)
        .body(notes.to_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["details"]["expected"], digest.as_str(), "{body}");
    assert_eq!(
        body["details"]["actual"],
        notes.digest.to_string(),
        "{body}"
    );

    // Import: the same bytes, never deployed, idempotent.
    let imported = test
        .client
        .import_package(&digest, bytes.clone())
        .await
        .unwrap();
    assert_eq!(
        (imported.digest.as_str(), imported.created),
        (digest.as_str(), true)
    );
    assert!(imported.deployment.is_none());
    let again = test.client.import_package(&digest, bytes).await.unwrap();
    assert!(!again.created);
    assert!(test.client.has_package(&digest).await.unwrap());
    assert_eq!(
        test.client.package(&digest).await.unwrap(),
        Bytes::from(hello.to_bytes())
    );
    let apps = test.client.apps().await.unwrap();
    assert_eq!(apps[0].running_version, None);
    assert_eq!(apps[0].status, AppStatus::Stopped);
    let versions = test.client.versions("hello").await.unwrap();
    assert_eq!(versions[0].digest, digest);
    assert!(versions[0].description.is_some());

    // A read token may download but not import.
    let reader = token(&test, "reader", Scope::Read).await;
    assert!(reader.has_package(&digest).await.unwrap());
    let e = reader
        .import_package(&digest, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_apps_switch_in_one_generation() {
    let env = TestEnv::start().await;
    let hello = package("examples/hello");
    let notes = package("examples/notes");
    env.publish(&versioned(&hello, "0.1.0", |m| m)).await;
    env.publish(&versioned(&notes, "0.1.0", |m| m)).await;
    upload(&env, &versioned(&hello, "0.2.0", |m| m)).await;
    upload(&env, &versioned(&notes, "0.2.0", |m| m)).await;
    let before = env.client.environment().await.unwrap().generation;

    let d = env
        .client
        .create_deployment(&request(vec![
            deploy("hello", "0.2.0"),
            deploy("notes", "0.2.0"),
        ]))
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:?}");
    assert_eq!((d.app.as_str(), d.kind), ("hello", OperationKind::Deploy));
    assert_eq!(d.operations.len(), 2);
    assert_eq!(d.operations[1].app, "notes");
    assert_eq!(d.operations[1].version.as_deref(), Some("0.2.0"));
    assert!(d.operations.iter().all(|o| o.digest.is_some()));
    let generation = d.generation.unwrap();
    assert!(generation > before);
    assert_eq!(
        env.client.environment().await.unwrap().generation,
        generation
    );
    assert_eq!(served(&env, "hello").await, (200, "0.2.0".into()));
    assert_eq!(served(&env, "notes").await, (200, "0.2.0".into()));
    let shown = env.client.deployment(d.id).await.unwrap();
    assert_eq!(shown.operations, d.operations);
    let of_notes = env
        .client
        .deployments(Some("notes"), Some(1))
        .await
        .unwrap();
    assert_eq!(of_notes[0].id, d.id);

    // A deployment with property values for a running app reconfigures it
    // in the same generation.
    let d = env
        .client
        .create_deployment(&DeploymentRequest {
            operations: vec![deploy("hello", "0.1.0")],
            config: BTreeMap::from([(
                "notes".to_string(),
                BTreeMap::from([("title".to_string(), Some("Ops".to_string()))]),
            )]),
            ..DeploymentRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(d.operations.len(), 2, "{d:?}");
    assert_eq!(d.operations[1].kind, OperationKind::Config);
    let config = env.client.config("notes").await.unwrap();
    let title = config.iter().find(|p| p.name == "title").unwrap();
    assert_eq!(title.value.as_deref(), Some("Ops"));
    assert_eq!(served(&env, "hello").await, (200, "0.1.0".into()));

    // Malformed requests are a 400 naming the field.
    for (body, field) in [
        (serde_json::json!({ "operations": [] }), "operations"),
        (
            serde_json::json!({ "operations": [
                { "op": "deploy", "app": "hello", "version": "0.1.0" },
                { "op": "undeploy", "app": "hello" },
            ] }),
            "operations[1].app",
        ),
        (
            serde_json::json!({ "operations": [{ "op": "deploy", "app": "hello", "version": "one" }] }),
            "operations[0].version",
        ),
    ] {
        let (status, error) = post_json(&env, "/deployments", &body).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["details"]["field"], field, "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_reports_problems_that_refuse_the_deployment() {
    let env = TestEnv::start().await;
    let hello = package("examples/hello");
    let notes = package("examples/notes");
    env.publish(&versioned(&hello, "0.1.0", |m| m)).await;
    env.publish(&versioned(&notes, "0.1.0", |m| m)).await;
    // hello 0.2.0 needs notes ^0.2 and a property without a default.
    let needy = versioned(&hello, "0.2.0", |m| {
        format!(
            "{m}\n[dependencies]\nnotes = \"^0.2\"\n\n[properties.api_url]\ntype = \"string\"\nrequired = true\n"
        )
    });
    upload(&env, &needy).await;
    upload(&env, &versioned(&notes, "0.2.0", |m| m)).await;
    let before = env.client.deployments(None, None).await.unwrap().len();

    let alone = request(vec![deploy("hello", "0.2.0")]);
    let dry = env.client.dry_run(&alone).await.unwrap();
    assert!(!dry.ok);
    let codes: Vec<(&str, ProblemCode)> = dry
        .problems
        .iter()
        .map(|p| (p.app.as_str(), p.code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("hello", ProblemCode::MissingProperty),
            ("hello", ProblemCode::UnmetDependency)
        ],
        "{dry:?}"
    );
    let missing = &dry.problems[0].message;
    assert!(
        missing.contains("api_url") && missing.contains("hello 0.2.0"),
        "{missing}"
    );
    assert!(dry.problems[1].message.contains("notes ^0.2"), "{dry:?}");

    // The deployment itself is refused with the same problems; nothing changed.
    let (status, error) =
        post_json(&env, "/deployments", &serde_json::to_value(&alone).unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (409, Some("deployment_conflict")),
        "{error}"
    );
    let problems = error["details"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{error}");
    assert_eq!(problems[0]["code"], "missing_property");
    assert_eq!(served(&env, "hello").await, (200, "0.1.0".into()));
    assert_eq!(
        env.client.deployments(None, None).await.unwrap().len(),
        before
    );

    // Unknown versions and apps, and an app that runs nothing.
    env.client.undeploy("notes").await.unwrap();
    let dry = env
        .client
        .dry_run(&request(vec![
            deploy("hello", "9.9.9"),
            OperationRequest::Undeploy {
                app: "ghost".into(),
            },
            OperationRequest::Undeploy {
                app: "notes".into(),
            },
        ]))
        .await
        .unwrap();
    let codes: Vec<ProblemCode> = dry.problems.iter().map(|p| p.code).collect();
    assert_eq!(
        codes,
        vec![
            ProblemCode::UnknownVersion,
            ProblemCode::UnknownApp,
            ProblemCode::NotDeployed
        ],
        "{dry:?}"
    );

    // With the dependency in the same deployment and the value in the plan,
    // everything switches together.
    let complete = DeploymentRequest {
        operations: vec![deploy("hello", "0.2.0"), deploy("notes", "0.2.0")],
        config: BTreeMap::from([(
            "hello".to_string(),
            BTreeMap::from([("api_url".to_string(), Some("http://api".to_string()))]),
        )]),
        ..DeploymentRequest::default()
    };
    let dry = env.client.dry_run(&complete).await.unwrap();
    assert!(dry.ok, "{dry:?}");
    let d = env.client.create_deployment(&complete).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded);
    assert_eq!(served(&env, "hello").await, (200, "0.2.0".into()));
    assert_eq!(served(&env, "notes").await, (200, "0.2.0".into()));

    // Undeploying (or downgrading) what a staying app needs breaks it.
    for operation in [
        OperationRequest::Undeploy {
            app: "notes".into(),
        },
        deploy("notes", "0.1.0"),
    ] {
        let dry = env.client.dry_run(&request(vec![operation])).await.unwrap();
        assert_eq!(dry.problems.len(), 1, "{dry:?}");
        assert_eq!(
            (dry.problems[0].app.as_str(), dry.problems[0].code),
            ("notes", ProblemCode::BreaksDependent)
        );
        assert!(dry.problems[0].message.contains("hello 0.2.0"), "{dry:?}");
    }
    let e = env.client.undeploy("notes").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("deployment_conflict")),
        "{e}"
    );
    assert_eq!(served(&env, "notes").await, (200, "0.2.0".into()));
}

/// Everything a client sees of a prepared deployment's environment.
async fn assert_serving(env: &TestEnv, hello: &str, generation: i64) {
    assert_eq!(served(env, "hello").await, (200, hello.to_string()));
    assert_eq!(
        env.client.environment().await.unwrap().generation,
        generation
    );
    let apps = env.client.apps().await.unwrap();
    let app = apps.iter().find(|a| a.name == "hello").unwrap();
    assert_eq!(app.running_version.as_deref(), Some(hello));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prepare_commit_abort_expire_and_restart() {
    let mut env = TestEnv::start().await;
    let hello = package("examples/hello");
    env.publish(&versioned(&hello, "0.1.0", |m| m)).await;
    upload(&env, &versioned(&hello, "0.2.0", |m| m)).await;
    let console = token(
        &env,
        "console:3f1c0b7e-1d2a-4c55-9a8e-2b9b1c0d7f42",
        Scope::Console,
    )
    .await;
    let deployer = token(&env, "ci", Scope::Deploy).await;
    let generation = env.client.environment().await.unwrap().generation;
    let prepare = DeploymentRequest {
        prepare: true,
        ..request(vec![deploy("hello", "0.2.0")])
    };

    // A console token deploys, but manages neither tokens nor front-ends.
    let e = console.tokens().await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");
    let e = console
        .set_frontend_enabled("fe-1", false)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    // Preparing, committing and aborting need scope console.
    let e = deployer.create_deployment(&prepare).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("forbidden")),
        "{e}"
    );

    // Prepared: staged, nothing switched, and it blocks every other change.
    let p = console.create_deployment(&prepare).await.unwrap();
    assert_eq!(p.status, DeploymentStatus::Prepared, "{p:?}");
    let expires = p.expires_at_ms.expect("a prepared deployment expires");
    assert!(
        (expires - p.started_at_ms - PREPARED_DEPLOYMENT_TTL_MS).abs() < 5_000,
        "{p:?}"
    );
    assert_serving(&env, "0.1.0", generation).await;
    let e = console.create_deployment(&prepare).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("deployment_in_progress")),
        "{e}"
    );
    let (status, error) = post_json(
        &env,
        "/deployments",
        &serde_json::to_value(&prepare).unwrap(),
    )
    .await;
    assert_eq!(
        (status, &error["details"]["id"]),
        (409, &serde_json::json!(p.id)),
        "{error}"
    );
    let e = env.client.deploy("hello", "0.2.0").await.unwrap_err();
    assert_eq!(e.code(), Some("deployment_in_progress"), "{e}");
    // The version it stages cannot be deleted from under it.
    let e = env
        .client
        .delete_version("hello", "0.2.0")
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(409), Some("conflict")), "{e}");
    assert!(
        e.to_string().contains(&format!("deployment {}", p.id)),
        "{e}"
    );
    let dry = env
        .client
        .dry_run(&request(vec![deploy("hello", "0.2.0")]))
        .await
        .unwrap();
    assert_eq!(
        dry.problems[0].code,
        ProblemCode::DeploymentInProgress,
        "{dry:?}"
    );
    let e = deployer.commit_deployment(p.id).await.unwrap_err();
    assert_eq!(e.status(), Some(403), "{e}");

    // Committed: exactly what was prepared, in the generation it staged.
    let d = console.commit_deployment(p.id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:?}");
    assert_eq!((d.generation, d.expires_at_ms), (p.generation, None));
    assert_serving(&env, "0.2.0", p.generation.unwrap()).await;
    let e = console.commit_deployment(p.id).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("not_prepared")),
        "{e}"
    );
    let e = console.abort_deployment(p.id).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("not_prepared")),
        "{e}"
    );
    let e = console.commit_deployment(p.id + 1000).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("deployment_not_found")),
        "{e}"
    );

    // Aborted: the environment serves exactly what it served before.
    let generation = p.generation.unwrap();
    let back = DeploymentRequest {
        prepare: true,
        ..request(vec![deploy("hello", "0.1.0")])
    };
    let p = console.create_deployment(&back).await.unwrap();
    let a = console.abort_deployment(p.id).await.unwrap();
    assert_eq!(a.status, DeploymentStatus::Aborted, "{a:?}");
    assert!(
        a.error.as_deref().unwrap().contains("console:3f1c0b7e"),
        "{a:?}"
    );
    assert_serving(&env, "0.2.0", generation).await;
    let e = console.commit_deployment(p.id).await.unwrap_err();
    assert_eq!(e.code(), Some("not_prepared"), "{e}");

    // Expired: aborted by the controller; a late commit is refused.
    env.env
        .as_ref()
        .unwrap()
        .controller()
        .set_prepared_ttl(Duration::from_millis(300));
    let p = console.create_deployment(&back).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let expired = console.deployment(p.id).await.unwrap();
    assert_eq!(expired.status, DeploymentStatus::Aborted, "{expired:?}");
    assert!(
        expired.error.as_deref().unwrap().starts_with("expired"),
        "{expired:?}"
    );
    let e = console.commit_deployment(p.id).await.unwrap_err();
    assert_eq!(e.code(), Some("not_prepared"), "{e}");
    assert_serving(&env, "0.2.0", generation).await;

    // A restart aborts a prepared deployment: nothing was switched.
    let p = console.create_deployment(&back).await.unwrap();
    env.restart().await;
    let d = env.client.deployment(p.id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Aborted, "{d:?}");
    assert_serving(&env, "0.2.0", generation).await;
    let d = env
        .client
        .create_deployment(&request(vec![deploy("hello", "0.1.0")]))
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undeploy_removes_the_app_from_routing_and_keeps_its_versions() {
    let env = TestEnv::start().await;
    let hello = versioned(&package("examples/hello"), "0.1.0", |m| m);
    env.publish(&hello).await;
    assert_eq!(served(&env, "hello").await, (200, "0.1.0".into()));

    let d: Deployment = env.client.undeploy("hello").await.unwrap();
    assert_eq!(
        (d.kind, d.status),
        (OperationKind::Undeploy, DeploymentStatus::Succeeded)
    );
    assert_eq!(d.version, "0.1.0");
    let response = env.get("/hello/version.txt").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "app_not_found", "{body}");
    let apps = env.client.apps().await.unwrap();
    assert_eq!(
        (apps[0].status, apps[0].running_version.as_deref()),
        (AppStatus::Stopped, None)
    );
    assert_eq!(env.client.versions("hello").await.unwrap().len(), 1);

    let e = env.client.undeploy("hello").await.unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("deployment_conflict")),
        "{e}"
    );
    let e = env.client.undeploy("ghost").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");

    // The CLI, one line; then deploying brings the app back.
    env.client.deploy("hello", "0.1.0").await.unwrap();
    let (ok, out, err) = run(&[
        "app", "undeploy", "hello", "--env", &env.url, "--token", &env.token,
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("undeployed hello 0.1.0 (deployment "),
        "{out}"
    );
    let (ok, _, err) = run(&[
        "app", "undeploy", "hello", "--env", &env.url, "--token", &env.token,
    ]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("runs nothing"), "{err}");
    env.client.deploy("hello", "0.1.0").await.unwrap();
    assert_eq!(served(&env, "hello").await, (200, "0.1.0".into()));
}

/// `runway logs --until` used to be dropped by the client: every field of
/// the wire query reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_queries_send_until() {
    let env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    let before = runway_store::now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(env.get_text("/hello/").await.0, 200);
    let requests = env.logs("hello", Some("request"), false).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    let until = env
        .client
        .logs(&LogQueryParams {
            app: Some("hello".into()),
            kind: Some(runway_api::v1::LogKinds(vec![LogKind::Request])),
            until_ms: Some(before),
            ..LogQueryParams::default()
        })
        .await
        .unwrap();
    assert!(until.is_empty(), "rows after until_ms: {until:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn farm_prepare_stages_everywhere_abort_leaves_it_commit_switches_all() {
    let farm = Farm::start(2).await;
    let hello = package("examples/hello");
    let notes = package("examples/notes");
    for (package, deploy_it) in [
        (versioned(&hello, "0.1.0", |m| m), true),
        (versioned(&notes, "0.1.0", |m| m), true),
        (versioned(&hello, "0.2.0", |m| m), false),
        (versioned(&notes, "0.2.0", |m| m), false),
    ] {
        farm.client
            .publish(package.to_bytes(), deploy_it, None)
            .await
            .expect("publish succeeds");
    }
    let urls: Vec<String> = farm.frontends.iter().map(|(_, p)| p.url.clone()).collect();
    for url in &urls {
        wait_200(&format!("{url}/notes/version.txt"), Duration::from_secs(10)).await;
    }
    let generation = farm.client.environment().await.unwrap().generation;
    let both = DeploymentRequest {
        prepare: true,
        ..request(vec![deploy("hello", "0.2.0"), deploy("notes", "0.2.0")])
    };
    let serving = |version: &'static str, generation: i64| {
        let urls = urls.clone();
        async move {
            for url in &urls {
                assert_eq!(served_generation(url).await, generation, "{url}");
                for app in ["hello", "notes"] {
                    let body = reqwest::get(format!("{url}/{app}/version.txt"))
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    assert_eq!(body, version, "{url}/{app}");
                }
                let ready = reqwest::get(format!("{url}/_runway/ready")).await.unwrap();
                assert_eq!(ready.status(), 200, "{url} stays ready");
            }
        }
    };

    // Prepared: staged on every front-end, switched on none.
    let p = farm.client.create_deployment(&both).await.unwrap();
    assert_eq!(p.status, DeploymentStatus::Prepared, "{p:?}");
    assert_eq!(p.frontends.len(), 2, "{p:?}");
    assert!(
        p.frontends
            .iter()
            .all(|f| f.state == FrontendProgressState::Staged),
        "{p:?}"
    );
    serving("0.1.0", generation).await;

    // Aborted: every staged table dropped, the farm serves what it served.
    let a = farm.client.abort_deployment(p.id).await.unwrap();
    assert_eq!(a.status, DeploymentStatus::Aborted);
    assert!(
        a.frontends
            .iter()
            .all(|f| f.state == FrontendProgressState::Aborted),
        "{a:?}"
    );
    serving("0.1.0", generation).await;
    assert_eq!(
        farm.client.environment().await.unwrap().generation,
        generation
    );

    // Committed: both apps switch in one generation on every front-end.
    let p = farm.client.create_deployment(&both).await.unwrap();
    let d = farm.client.commit_deployment(p.id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:?}");
    assert!(
        d.frontends
            .iter()
            .all(|f| f.state == FrontendProgressState::Committed),
        "{d:?}"
    );
    let committed = d.generation.unwrap();
    assert_eq!(Some(committed), p.generation);
    serving("0.2.0", committed).await;
    let apps = farm.client.apps().await.unwrap();
    assert!(
        apps.iter()
            .all(|a| a.running_version.as_deref() == Some("0.2.0")),
        "{apps:?}"
    );

    // An undeploy on the farm: gone from every front-end, in one generation.
    let d = farm.client.undeploy("notes").await.unwrap();
    let undeployed = d.generation.unwrap();
    for url in &urls {
        assert_eq!(served_generation(url).await, undeployed);
        let r = reqwest::get(format!("{url}/notes/version.txt"))
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_documents_the_console_endpoints() {
    let env = TestEnv::start().await;
    let doc: serde_json::Value = env
        .http
        .get(format!("{}/_runway/api/openapi.json", env.url))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/_runway/api/v1/packages/{digest}", "get"),
        ("/_runway/api/v1/packages/{digest}", "head"),
        ("/_runway/api/v1/packages/{digest}", "put"),
        ("/_runway/api/v1/deployments", "post"),
        ("/_runway/api/v1/deployments/dry-run", "post"),
        ("/_runway/api/v1/deployments/{id}", "get"),
        ("/_runway/api/v1/deployments/{id}/commit", "post"),
        ("/_runway/api/v1/deployments/{id}/abort", "post"),
        ("/_runway/api/v1/apps/{app}/deployment", "delete"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    for schema in [
        "DeploymentRequest",
        "DryRun",
        "ProblemCode",
        "DeploymentStatus",
    ] {
        assert!(schemas[schema].is_object(), "schema {schema} missing");
    }
    let codes = schemas["ProblemCode"].to_string();
    assert!(codes.contains("breaks_dependent"), "{codes}");
}
