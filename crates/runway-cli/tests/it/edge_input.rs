//! Input at the edge: bad input gets a precise refusal in the documented JSON
//! error body (API) or a guest-visible `wasi:keyvalue` error, never a 500 or a
//! database's text; limits (manifest size, key size, key-value quota,
//! concurrent uploads) hold before any work is done.

use std::time::{Duration, Instant};

use runway_api::ErrorBody;
use runway_client::ClientError;
use runway_store::KvQuota;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestEnv, package, repackage};

/// Texts that must never reach a client or a guest.
const LEAKS: &[&str] = &[
    "sqlx",
    "database",
    "invalid byte sequence",
    "0x00",
    "panicked",
    "backtrace",
    "/tmp/",
    "SQLSTATE",
];

fn assert_no_leak(text: &str, data_dir: &str) {
    for leak in LEAKS {
        assert!(!text.contains(leak), "{leak:?} leaked: {text}");
    }
    assert!(!text.contains(data_dir), "the data dir leaked: {text}");
}

/// A response that must be the JSON error body with `status` and `code`.
async fn error_body(
    response: reqwest::Response,
    status: u16,
    code: &str,
    data_dir: &str,
) -> ErrorBody {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let has_id = response.headers().contains_key("x-request-id");
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?} for {text}"
    );
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(body.code, code, "{text}");
    assert!(body.message.len() > 10, "{text}");
    assert!(has_id, "no x-request-id: {text}");
    assert_no_leak(&text, data_dir);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_rejections_are_json_error_bodies() {
    let env = TestEnv::start().await;
    let data_dir = env.data_dir().display().to_string();
    let api = format!("{}/_runway/api/v1", env.url);
    let http = &env.http;
    let auth = format!("Bearer {}", env.token);

    // Bad query strings.
    let r = http
        .get(format!("{api}/logs?limit=lots"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    let body = error_body(r, 400, "invalid_request", &data_dir).await;
    assert!(body.message.contains("limit"), "{}", body.message);
    let r = http
        .get(format!("{api}/deployments?limit=-x"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    error_body(r, 400, "invalid_request", &data_dir).await;

    // 415: JSON endpoint without a JSON content type.
    let r = http
        .post(format!("{api}/tokens"))
        .header("authorization", &auth)
        .header("content-type", "text/plain")
        .body(r#"{"name":"ci","scope":"read"}"#)
        .send()
        .await
        .unwrap();
    let body = error_body(r, 415, "unsupported_media_type", &data_dir).await;
    assert!(
        body.message.contains("application/json"),
        "{}",
        body.message
    );

    // 400: JSON syntax; 422: the wrong shape.
    let r = http
        .post(format!("{api}/tokens"))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    error_body(r, 400, "invalid_request", &data_dir).await;
    let r = http
        .post(format!("{api}/tokens"))
        .header("authorization", &auth)
        .json(&serde_json::json!({"nom": "ci"}))
        .send()
        .await
        .unwrap();
    let body = error_body(r, 422, "invalid_request", &data_dir).await;
    assert!(body.message.contains("name"), "{}", body.message);

    // 413: a JSON body over the API's limit. Sent on a connection of its own:
    // the server answers before the body is sent and closes the connection,
    // and a client that pooled it anyway (hyper's client can, when the answer
    // comes while it is still sending) loses its next request on it
    // (IncompleteMessage, seen once under CI load).
    let r = reqwest::Client::new()
        .post(format!("{api}/tokens"))
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"name":"{}","scope":"read"}}"#,
            "x".repeat(3 << 20)
        ))
        .send()
        .await
        .unwrap();
    error_body(r, 413, "payload_too_large", &data_dir).await;

    // 404 and 405.
    let r = http
        .get(format!("{api}/no-such-thing"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    error_body(r, 404, "not_found", &data_dir).await;
    let r = http
        .delete(format!("{api}/apps"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    error_body(r, 405, "method_not_allowed", &data_dir).await;

    // NUL in a path segment or a query value: 400 naming the part, before any
    // handler (or database) sees it.
    for (url, part) in [
        (format!("{api}/apps/he%00llo"), "path"),
        (format!("{api}/logs?app=a%00b"), "query"),
        (format!("{api}/deployments?app=%00"), "query"),
        (format!("{api}/tokens/x%00"), "path"),
    ] {
        let r = http
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        let body = error_body(r, 400, "invalid_request", &data_dir).await;
        assert_eq!(body.details["field"], part, "{url}: {body:?}");
        assert!(body.message.contains("NUL"), "{}", body.message);
    }

    // Same through a raw socket: a query string axum cannot parse.
    let addr = env.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /_runway/api/v1/logs?since_ms=yesterday&errors=maybe HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response}"
    );
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(body.contains("\"code\":\"invalid_request\""), "{response}");
}

/// hello with a string property `greeting`.
fn hello_with_property() -> runway_manifest::Package {
    repackage(&package("examples/hello"), |m| {
        format!("{m}\n[properties.greeting]\ndefault = \"hi\"\n")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_config_is_refused_with_a_precise_400_and_changes_nothing() {
    let env = TestEnv::start().await;
    let data_dir = env.data_dir().display().to_string();
    env.publish(&hello_with_property()).await;
    let before = env.client.config("hello").await.unwrap();
    let deployments = env.client.deployments(None, None).await.unwrap().len();

    let url = format!("{}/_runway/api/v1/apps/hello/config", env.url);
    for (values, field) in [
        (
            serde_json::json!({"greeting": "a\u{0}b"}),
            "values.greeting",
        ),
        (
            serde_json::json!({"gree\u{0}ting": "x"}),
            "values.gree\u{0}ting",
        ),
    ] {
        let r = env
            .http
            .patch(&url)
            .header("authorization", format!("Bearer {}", env.token))
            .json(&serde_json::json!({ "values": values }))
            .send()
            .await
            .unwrap();
        let body = error_body(r, 400, "invalid_property", &data_dir).await;
        assert_eq!(body.details["field"], field, "{body:?}");
        assert!(body.message.contains("NUL"), "{}", body.message);
    }
    assert_eq!(env.client.config("hello").await.unwrap(), before);
    assert_eq!(
        env.client.deployments(None, None).await.unwrap().len(),
        deployments,
        "a refused patch must not start a deployment"
    );
    assert_eq!(env.get_text("/hello/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_manifest_is_refused_at_publish() {
    let env = TestEnv::start().await;
    let mut big = package("examples/hello");
    big.manifest_toml.push_str(&"# padding\n".repeat(7000));
    match env.client.publish(big.to_bytes(), true, None).await {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => {
            assert_eq!(
                (status, code.as_str()),
                (400, "invalid_package"),
                "{message}"
            );
            assert!(message.contains("runway.toml"), "{message}");
            assert!(message.contains("65536"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(env.client.apps().await.unwrap().is_empty());
}

/// The guest's answer to `path` on the kvabuse app.
async fn kv(env: &TestEnv, path: &str) -> String {
    let (status, body) = env.get_text(&format!("/kvabuse/{path}")).await;
    assert_eq!(status, 200, "{path}: {body}");
    body.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_key_value_bad_input_gets_precise_errors() {
    let env = TestEnv::start().await;
    let data_dir = env.data_dir().display().to_string();
    env.publish(&package("tests/guests/kvabuse")).await;
    let cases: &[(&str, &[&str])] = &[
        ("nul-key", &["Other", "key", "NUL"]),
        ("nul-get", &["Other", "key", "NUL"]),
        ("nul-increment", &["Other", "key", "NUL"]),
        ("nul-bucket", &["Other", "bucket name", "NUL"]),
        ("long-bucket", &["Other", "bucket name", "129 bytes", "128"]),
        ("long-key?n=1025", &["Other", "key", "1024 bytes"]),
        ("long-key?n=16777216", &["Other", "key", "1024 bytes"]),
        ("nul-batch", &["Other", "key", "NUL"]),
    ];
    for (path, wants) in cases {
        let answer = kv(&env, path).await;
        assert!(answer.starts_with("error "), "{path}: {answer}");
        for want in *wants {
            assert!(answer.contains(want), "{path}: no {want:?} in {answer}");
        }
        assert!(answer.len() < 600, "{path}: the input was echoed: {answer}");
        assert_no_leak(&answer, &data_dir);
    }
    // The good key of the refused batch did not land; a key at the limit does.
    assert_eq!(kv(&env, "get?key=good").await, "ok None");
    assert_eq!(kv(&env, "long-key?n=1024").await, "ok ()");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_quota_stops_a_guest_with_a_clear_error() {
    let env = TestEnv::start_with(|c| {
        c.kv_quota = KvQuota {
            max_bytes: 1 << 20,
            max_keys: 5,
        }
    })
    .await;
    env.publish(&package("tests/guests/kvabuse")).await;
    let answer = kv(&env, "fill?n=10&size=10").await;
    assert!(
        answer.starts_with("error after 5: Error::Other("),
        "{answer}"
    );
    assert!(answer.contains("quota"), "{answer}");
    assert!(answer.contains("--kv-quota-keys"), "{answer}");
    // Overwriting stays allowed; bytes are bounded too.
    assert_eq!(kv(&env, "fill?n=5&size=10").await, "ok 5");
    let answer = kv(&env, "fill?n=1&size=2000000").await;
    assert!(
        answer.starts_with("error after 0: Error::Other("),
        "{answer}"
    );
    assert!(answer.contains("bytes"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_are_bounded_and_streamed_to_disk() {
    let env = TestEnv::start_with(|c| c.max_uploads = 1).await;
    let packages =
        runway_store::BlobStore::new(env.data_dir()).dir(runway_store::BlobKind::Package);
    let uploads = || {
        std::fs::read_dir(&packages)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".upload-")
            })
            .count()
    };

    // A slow upload holds the only slot; its first bytes are already on disk.
    let addr = env.url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /_runway/api/v1/packages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/vnd.runway.package\r\nContent-Length: 1000000\r\n\r\n",
        env.token
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&[0x1f; 4096]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while uploads() == 0 {
        assert!(
            Instant::now() < deadline,
            "the upload never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another upload is refused at once, with retry advice.
    let hello = package("examples/hello");
    let r = env
        .http
        .post(format!("{}/_runway/api/v1/packages", env.url))
        .header("authorization", format!("Bearer {}", env.token))
        .header("content-type", "application/vnd.runway.package")
        .body(hello.to_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("5")
    );
    let data_dir = env.data_dir().display().to_string();
    let body = error_body(r, 503, "too_many_uploads", &data_dir).await;
    assert!(body.message.contains("--max-uploads"), "{}", body.message);

    // The slow client goes away: its slot and its file are released.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match env.client.publish(hello.to_bytes(), true, None).await {
            Ok(_) => break,
            Err(ClientError::Api { status: 503, .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish after the slow upload left: {e:?}"),
        }
    }
    assert_eq!(uploads(), 0, "an upload file was left behind");
    assert_eq!(env.get_text("/hello/").await.0, 200);
}
