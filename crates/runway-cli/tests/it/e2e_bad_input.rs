//! Every bad input gets a precise error and leaves the environment exactly
//! as it was: the running version keeps serving.

use std::time::Duration;

use runway_api::v1::{CreateToken, DeploymentStatus, LogKind, Scope};
use runway_client::ClientError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestEnv, package, repackage, with_version};

/// Publishes raw bytes and returns the API error (status, code, message).
async fn publish_error(env: &TestEnv, bytes: Vec<u8>) -> (u16, String, String) {
    match env.client.publish(bytes, true, None).await {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The state that must not change: hello 0.1.0 serving, one app, one version.
async fn assert_untouched(env: &TestEnv) {
    assert_eq!(
        env.get_text("/hello/").await,
        (200, "Hello from Runway!\n".to_string())
    );
    let apps = env.client.apps().await.unwrap();
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0].running_version.as_deref(), Some("0.1.0"));
    assert_eq!(env.client.versions("hello").await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packages_and_components_are_refused_and_change_nothing() {
    let env = TestEnv::start_with(|c| c.max_package_bytes = 2 << 20).await;
    let hello = package("examples/hello");
    env.publish(&hello).await;

    // Not a package at all.
    let (status, code, message) = publish_error(&env, b"hello, I am not a package".to_vec()).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_package"),
        "{message}"
    );
    assert!(message.contains("not a Runway package"), "{message}");
    assert_untouched(&env).await;

    // Truncated.
    let bytes = hello.to_bytes();
    let (status, code, _) = publish_error(&env, bytes[..bytes.len() / 2].to_vec()).await;
    assert_eq!((status, code.as_str()), (400, "invalid_package"));
    assert_untouched(&env).await;

    // Tampered: a component byte changed after the index was written.
    let tampered = tamper_component(&repackage(&hello, |m| with_version(m, "0.9.0")));
    let (status, code, message) = publish_error(&env, tampered).await;
    assert_eq!((status, code.as_str()), (400, "invalid_package"));
    assert!(
        message.contains("component.wasm") && message.contains("mismatch"),
        "{message}"
    );
    assert_untouched(&env).await;

    // Oversized upload.
    let (status, code, message) = publish_error(&env, vec![7u8; 3 << 20]).await;
    assert_eq!(
        (status, code.as_str()),
        (413, "payload_too_large"),
        "{message}"
    );
    assert_untouched(&env).await;

    // Same version, different bytes.
    let changed = runway_manifest::Package::from_parts(
        hello
            .manifest_toml
            .replace("description = ", "description = \"changed\"\n# "),
        hello.component.clone(),
        hello.static_files.clone(),
    )
    .unwrap();
    let (status, code, message) = publish_error(&env, changed.to_bytes()).await;
    assert_eq!((status, code.as_str()), (409, "conflict"), "{message}");
    assert!(message.contains("bump"), "{message}");
    assert_untouched(&env).await;

    // A core module, a component without the handler, one with a foreign import.
    for (guest, expected) in [
        ("tests/guests/coremodule", "core WebAssembly module"),
        (
            "tests/guests/noexport",
            "does not export wasi:http/incoming-handler",
        ),
        ("tests/guests/badimport", "test:extra/secret-sauce"),
    ] {
        let (status, code, message) = publish_error(&env, package(guest).to_bytes()).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "invalid_component"),
            "{guest}: {message}"
        );
        assert!(message.contains(expected), "{guest}: {message}");
        assert_untouched(&env).await;
    }
}

/// Rewrites the gzip-tar package with one byte of component.wasm flipped,
/// keeping the index (and so the claimed digests) as they were.
fn tamper_component(package: &runway_manifest::Package) -> Vec<u8> {
    use std::io::Read;
    let bytes = package.to_bytes();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut builder = tar::Builder::new(Vec::new());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == "component.wasm" {
            let last = data.len() - 1;
            data[last] ^= 0xff;
        }
        let mut header = entry.header().clone();
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_guests_fail_only_their_own_request() {
    let env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    let misbehave = repackage(&package("tests/guests/misbehave"), |m| {
        format!("{m}\n[limits]\ntimeout_ms = 1500\nmemory_mib = 32\nmax_body_bytes = 1024\n")
    });
    env.publish(&misbehave).await;

    for (path, status, code) in [
        ("/misbehave/trap", 500, "app_trapped"),
        ("/misbehave/loop", 504, "app_timeout"),
        ("/misbehave/oom", 500, "app_memory_limit"),
    ] {
        let response = env.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&format!("\"code\":\"{code}\"")),
            "{path}: {body}"
        );
        assert!(
            body.contains(&request_id),
            "{path}: the error carries the request id: {body}"
        );
        // The next request to the same app succeeds, and the others never noticed.
        assert_eq!(
            env.get_text("/misbehave/ok").await,
            (200, "ok\n".to_string()),
            "after {path}"
        );
        assert_eq!(env.get_text("/hello/").await.0, 200);
    }

    // Errors are in the log catalog with app, version and cause.
    let errors = env.logs("misbehave", None, true).await;
    for code in ["app_trapped", "app_timeout", "app_memory_limit"] {
        assert!(
            errors.iter().any(|e| e.kind == LogKind::Error
                && e.version.as_deref() == Some("0.1.0")
                && e.message.as_deref().unwrap_or("").contains(code)),
            "{code} missing from {errors:?}"
        );
    }

    // Output is captured line by line.
    assert_eq!(env.get_text("/misbehave/print").await.0, 200);
    let output = env.logs("misbehave", Some("output"), false).await;
    let lines: Vec<(&str, &str)> = output
        .iter()
        .map(|l| {
            (
                l.stream.as_deref().unwrap_or(""),
                l.message.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert!(lines.contains(&("stdout", "hello stdout")), "{lines:?}");
    assert!(lines.contains(&("stderr", "hello stderr")), "{lines:?}");

    // Request bodies over the app's cap: declared, and streamed without a length.
    let small = env
        .http
        .post(format!("{}/misbehave/echo", env.url))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (small.status().as_u16(), small.text().await.unwrap()),
        (200, "1000\n".to_string())
    );
    let big = env
        .http
        .post(format!("{}/misbehave/echo", env.url))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'y'; 512])).collect();
    let streamed = env
        .http
        .post(format!("{}/misbehave/echo", env.url))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_and_bad_names_are_refused() {
    let env = TestEnv::start().await;
    env.publish(&package("examples/hello")).await;
    for raw in [
        "/hello/../hello/index.txt",
        "/hello/%2e%2e/%2e%2e/etc/passwd",
        "/hello/a/..%2F..%2Fx",
    ] {
        let (status, body) = raw_get(env.env.as_ref().unwrap().addr(), raw).await;
        assert_eq!(status, 400, "{raw}: {body}");
        assert!(body.contains("invalid_path"), "{raw}: {body}");
    }
    for (app, version) in [("a%2Fb", "1.0.0"), ("..", "1.0.0"), ("hello", "not-semver")] {
        let response = env
            .http
            .post(format!("{}/_runway/api/v1/apps/{app}/deployments", env.url))
            .bearer_auth(&env.token)
            .json(&serde_json::json!({ "version": version }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        // `apps/../deployments` is normalised by the client to
        // `/deployments`, whose body has another shape (422).
        assert!(
            [400, 404, 405, 422].contains(&status),
            "{app}@{version}: {status} {body}"
        );
        assert!(body.contains("\"code\""), "JSON error body: {body}");
    }
    assert_eq!(env.get_text("/hello/").await.0, 200);
}

/// Sends a request line as is: HTTP clients normalise `..` away.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_scoped_and_revocable() {
    let env = TestEnv::start().await;
    let api = format!("{}/_runway/api/v1/apps", env.url);
    let status = |r: reqwest::Response| r.status().as_u16();

    assert_eq!(status(env.http.get(&api).send().await.unwrap()), 401);
    assert_eq!(
        status(
            env.http
                .get(&api)
                .bearer_auth("rwt_0000")
                .send()
                .await
                .unwrap()
        ),
        401
    );
    let body = env
        .http
        .get(&api)
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    // Liveness and readiness are open.
    assert_eq!(
        status(
            env.http
                .get(format!("{}/_runway/health", env.url))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            env.http
                .get(format!("{}/_runway/ready", env.url))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    // The OpenAPI document needs a token too, and names the endpoints.
    let doc = env
        .http
        .get(format!("{}/_runway/api/openapi.json", env.url))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(doc.contains("/_runway/api/v1/packages"), "{doc}");

    let reader = env
        .client
        .create_token(&CreateToken {
            name: "ci-reader".into(),
            scope: Scope::Read,
        })
        .await
        .unwrap();
    assert!(reader.token.starts_with("rwt_"));
    assert_eq!(
        status(
            env.http
                .get(&api)
                .bearer_auth(&reader.token)
                .send()
                .await
                .unwrap()
        ),
        200
    );
    let publish = env
        .http
        .post(format!("{}/_runway/api/v1/packages", env.url))
        .bearer_auth(&reader.token)
        .body(package("examples/hello").to_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status(), 403);
    assert!(publish.text().await.unwrap().contains("needs deploy"));
    assert!(
        env.client.apps().await.unwrap().is_empty(),
        "a refused publish changed nothing"
    );

    // Listed without the secret; revoked, it stops working at once.
    let listed = env.client.tokens().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "ci-reader"));
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&reader.token)
    );
    env.client.revoke_token("ci-reader").await.unwrap();
    let revoked = env
        .http
        .get(&api)
        .bearer_auth(&reader.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
    assert!(revoked.text().await.unwrap().contains("revoked"));

    // The admin token is on disk, owner-only.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(env.data_dir().join("admin.token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_properties_block_deployment_until_set_and_secrets_stay_hidden() {
    let env = TestEnv::start().await;
    let hello = package("examples/hello");
    env.publish(&hello).await;
    let needs_secret = repackage(&hello, |m| {
        format!(
            "{}\n[properties.api_key]\ntype = \"string\"\nrequired = true\nsecret = true\n",
            with_version(m, "0.2.0")
        )
    });
    let (result, _) = env
        .client
        .publish(needs_secret.to_bytes(), true, None)
        .await
        .unwrap();
    let deployment = result.deployment.expect("deploy was attempted");
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    assert!(deployment.error.unwrap().contains("api_key"));
    assert_untouched_running(&env, "0.1.0").await;

    // Deploying 0.2.0 again fails with a message saying how to fix it.
    let err = env
        .client
        .deploy("hello", "0.2.0")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("runway app config hello api_key="), "{err}");
    assert_untouched_running(&env, "0.1.0").await;

    // The operator sets the secret (declared by 0.2.0), then the deploy passes.
    let mut patch = runway_api::v1::ConfigPatch::default();
    patch.values.insert("api_key".into(), Some("s3cr3t".into()));
    env.client
        .set_config("hello", &patch)
        .await
        .expect("a key declared by a published version");
    let deployment = env
        .client
        .deploy("hello", "0.2.0")
        .await
        .expect("deploys once the secret is set");
    assert_eq!(deployment.status, DeploymentStatus::Succeeded);
    assert_untouched_running(&env, "0.2.0").await;

    // No read endpoint returns the secret.
    let config = env.client.config("hello").await.unwrap();
    let key = config.iter().find(|p| p.name == "api_key").unwrap();
    assert!(key.secret && key.value.is_none());
    let shown = env.client.app("hello").await.unwrap();
    assert!(!serde_json::to_string(&shown).unwrap().contains("s3cr3t"));
}

async fn assert_untouched_running(env: &TestEnv, version: &str) {
    assert_eq!(env.get_text("/hello/").await.0, 200);
    let apps = env.client.apps().await.unwrap();
    assert_eq!(apps[0].running_version.as_deref(), Some(version));
}
