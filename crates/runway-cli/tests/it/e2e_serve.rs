//! Publish → serve, redeploy under load, rollback, key-value data across a
//! restart, properties, outbound allow-list, app-to-app calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use runway_api::v1::{ConfigPatch, DeploymentStatus};

use crate::support::{TestEnv, package, repackage, with_version};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_then_serve_with_platform_headers_and_static_files() {
    let env = TestEnv::start().await;
    let result = env.publish(&package("examples/hello")).await;
    assert!(result.created && result.compiled);
    assert_eq!(
        (result.app.as_str(), result.version.as_str()),
        ("hello", "0.1.0")
    );

    let response = env.get("/hello/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-runway-frontend"], "fe-1");
    assert!(!response.headers()["x-request-id"].is_empty());
    assert_eq!(response.text().await.unwrap(), "Hello from Runway!\n");

    let (status, body) = env.get_text("/hello/index.txt").await;
    assert_eq!((status, body.as_str()), (200, "static hello\n"));

    // A caller's request id is kept.
    let response = env
        .http
        .get(format!("{}/hello/", env.url))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");

    // `/hello` redirects to `/hello/`; unknown apps are a JSON 404.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/hello", env.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "/hello/");
    let (status, body) = env.get_text("/nope/").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"app_not_found\""), "{body}");

    // The request is in the log catalog with its status and size.
    let logs = env.logs("hello", Some("request"), false).await;
    let row = logs
        .iter()
        .find(|l| l.request_id.as_deref() == Some("trace-42"))
        .expect("request logged");
    assert_eq!(row.status, Some(200));
    assert_eq!(row.bytes_out, Some("Hello from Runway!\n".len() as i64));
    assert_eq!(row.version.as_deref(), Some("0.1.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_is_idempotent_and_a_known_component_is_never_recompiled() {
    let env = TestEnv::start().await;
    let hello = package("examples/hello");
    let first = env.publish(&hello).await;
    let again = env.publish(&hello).await;
    assert!(!again.created, "same bytes, same version: nothing new");
    assert!(!again.compiled);
    let next = env
        .publish(&repackage(&hello, |m| with_version(m, "0.1.1")))
        .await;
    assert!(next.created);
    assert!(
        !next.compiled,
        "same component digest: the artifact is reused"
    );
    assert_eq!(next.artifact_digest, first.artifact_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_under_concurrent_load_fails_no_request() {
    let env = TestEnv::start().await;
    let notes = package("examples/notes");
    let v2 = repackage(&notes, |m| with_version(m, "0.2.0"));
    env.publish(&notes).await;
    env.publish(&v2).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (http, url, stop, ok) = (env.http.clone(), env.url.clone(), stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(format!("{url}/notes/_env")).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().await.unwrap_or_default();
                        if body.contains("version=0.1.0") || body.contains("version=0.2.0") {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failures.push(format!("unexpected body {body:?}"));
                        }
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(format!("error {e}")),
                }
            }
            failures
        }));
    }
    for round in 0..6 {
        let version = if round % 2 == 0 { "0.1.0" } else { "0.2.0" };
        let deployment = env.client.deploy("notes", version).await.expect("deploy");
        assert_eq!(deployment.status, DeploymentStatus::Succeeded);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "failed requests during redeploys: {failures:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 50, "the load ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_a_deployment_of_the_previous_version() {
    let env = TestEnv::start().await;
    let notes = package("examples/notes");
    env.publish(&notes).await;
    env.publish(&repackage(&notes, |m| with_version(m, "0.2.0")))
        .await;
    assert!(
        env.get_text("/notes/_env")
            .await
            .1
            .contains("version=0.2.0")
    );

    env.client.deploy("notes", "0.1.0").await.expect("rollback");
    assert!(
        env.get_text("/notes/_env")
            .await
            .1
            .contains("version=0.1.0")
    );
    let apps = env.client.apps().await.unwrap();
    assert_eq!(apps[0].running_version.as_deref(), Some("0.1.0"));
    let versions = env.client.versions("notes").await.unwrap();
    assert_eq!(versions.iter().filter(|v| v.running).count(), 1);

    // The running version cannot be deleted; the other one can.
    let err = env
        .client
        .delete_version("notes", "0.1.0")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is running"), "{err}");
    env.client
        .delete_version("notes", "0.2.0")
        .await
        .expect("delete idle version");
    assert_eq!(env.client.versions("notes").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_data_survives_redeploys_and_restarts() {
    let mut env = TestEnv::start().await;
    let notes = package("examples/notes");
    env.publish(&notes).await;
    let created = env
        .http
        .post(format!("{}/notes/", env.url))
        .body("buy milk")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.text().await.unwrap().trim().to_string();

    env.publish(&repackage(&notes, |m| with_version(m, "0.2.0")))
        .await;
    assert_eq!(
        env.get_text(&format!("/notes/{id}")).await,
        (200, "buy milk".to_string())
    );

    env.restart().await;
    assert_eq!(
        env.get_text(&format!("/notes/{id}")).await,
        (200, "buy milk".to_string())
    );
    let (status, listing) = env.get_text("/notes/").await;
    assert_eq!(status, 200);
    assert!(listing.contains(&format!("{id}: buy milk")), "{listing}");
    // The counter goes on where it was.
    let next = env
        .http
        .post(format!("{}/notes/", env.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        next.text().await.unwrap().trim(),
        (id.parse::<u64>().unwrap() + 1).to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_overrides_apply_per_environment_and_are_validated() {
    let env = TestEnv::start().await;
    env.publish(&package("examples/notes")).await;
    assert!(env.get_text("/notes/").await.1.starts_with("Notes\n"));

    let mut patch = ConfigPatch::default();
    patch
        .values
        .insert("title".into(), Some("Team notes".into()));
    let views = env.client.set_config("notes", &patch).await.unwrap();
    let title = views.iter().find(|p| p.name == "title").unwrap();
    assert_eq!(
        (title.value.as_deref(), title.source.as_str()),
        (Some("Team notes"), "environment")
    );
    assert!(env.get_text("/notes/").await.1.starts_with("Team notes\n"));

    let mut unset = ConfigPatch::default();
    unset.values.insert("title".into(), None);
    env.client.set_config("notes", &unset).await.unwrap();
    assert!(env.get_text("/notes/").await.1.starts_with("Notes\n"));

    let mut unknown = ConfigPatch::default();
    unknown.values.insert("colour".into(), Some("red".into()));
    let err = env
        .client
        .set_config("notes", &unknown)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no property 'colour'") && err.contains("title"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_calls_follow_the_allow_list_and_reach_other_apps_internally() {
    let env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    let origin = env.url.clone();
    let caller = repackage(&package("tests/guests/caller"), |m| {
        m.replace("\"http://127.0.0.1:9\"", &format!("\"{origin}\""))
    });
    env.publish(&caller).await;

    let fetch = |url: String| {
        let env = &env;
        async move {
            let encoded: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
            env.get_text(&format!("/caller/fetch?url={encoded}")).await
        }
    };
    // Allowed origin: the environment itself.
    let (status, body) = fetch(format!("{origin}/hello/")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "status=200\nHello from Runway!\n");
    // Not on the list: the guest sees HttpRequestDenied, and it is logged.
    let (status, body) = fetch("http://127.0.0.1:1/".into()).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    // Another app of the environment, without leaving the process.
    let (status, body) = fetch("http://hello.internal/".into()).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "status=200\nHello from Runway!\n")
    );

    let logs = env.logs("caller", Some("platform"), false).await;
    assert!(
        logs.iter().any(|l| l
            .message
            .as_deref()
            .unwrap_or("")
            .contains("http://127.0.0.1:1/ refused")),
        "{logs:?}"
    );
}
