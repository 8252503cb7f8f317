//! Broken guest responses and abandoned requests, seen from the wire: a raw
//! HTTP/1.1 client (tokio `TcpStream`) checks exactly what arrives.
//!
//! - A response whose head is out but whose body is broken (short or long
//!   for its `content-length`, guest trapped or timed out mid-body) is
//!   aborted: no terminating chunk, connection closed before the declared
//!   length. Never a response that looks complete. The cause is logged.
//! - A client that goes away stops its guest at once (not at its deadline),
//!   frees its instance slot, and its request is logged with status 499.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use runway_api::v1::{LogKind, LogLevel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestEnv, package, repackage};

fn addr(env: &TestEnv) -> SocketAddr {
    env.url
        .trim_start_matches("http://")
        .parse()
        .expect("the environment listens on an IP address")
}

/// Sends `GET path` with a request id on a kept-alive connection (so that
/// only a broken response closes it).
async fn send_get(addr: SocketAddr, path: &str, request_id: &str) -> TcpStream {
    send(addr, path, request_id, "").await
}

async fn send(addr: SocketAddr, path: &str, request_id: &str, extra: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-request-id: {request_id}\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// What arrived on one connection: every byte until the server closed it,
/// or until `within` ran out (`closed` false: the connection was kept open,
/// as after a response that looked complete).
struct Wire {
    bytes: Vec<u8>,
    closed: bool,
}

impl Wire {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn head_and_body(&self) -> (String, Vec<u8>) {
        let split = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", self.text()));
        (
            String::from_utf8_lossy(&self.bytes[..split]).to_lowercase(),
            self.bytes[split + 4..].to_vec(),
        )
    }
}

async fn read_all(stream: &mut TcpStream, within: Duration) -> Wire {
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                return Wire {
                    bytes,
                    closed: false,
                };
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Wire {
                    bytes,
                    closed: true,
                };
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until `needle` arrived (or fails after 10 s).
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !bytes.windows(needle.len()).any(|w| w == needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 10 s; got {bytes:?}"))
            .expect("read");
        assert!(n > 0, "connection closed before {needle:?}; got {bytes:?}");
        bytes.extend_from_slice(&buf[..n]);
    }
    bytes
}

/// The log rows of `app` for one request id, waiting (bounded) for `want`.
async fn rows_for(
    env: &TestEnv,
    app: &str,
    request_id: &str,
    want: impl Fn(&[runway_api::v1::LogEntry]) -> bool,
) -> Vec<runway_api::v1::LogEntry> {
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = env
            .logs(app, None, false)
            .await
            .into_iter()
            .filter(|r| r.request_id.as_deref() == Some(request_id))
            .collect();
        if want(&rows) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rows
}

fn misbehave_with(limits: &str) -> runway_manifest::Package {
    repackage(&package("tests/guests/misbehave"), |m| {
        format!("{m}\n[limits]\n{limits}\n")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_guest_responses_are_aborted_never_complete_and_logged() {
    let env = TestEnv::start().await;
    env.publish(&misbehave_with("timeout_ms = 1500")).await;
    let addr = addr(&env);

    // Before the head: a JSON 5xx carrying the request id.
    let mut stream = send(
        addr,
        "/misbehave/trap",
        "broken-trap",
        "Connection: close\r\n",
    )
    .await;
    let wire = read_all(&mut stream, Duration::from_secs(10)).await;
    let (head, body) = wire.head_and_body();
    assert!(head.starts_with("http/1.1 500"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("\"code\":\"app_trapped\""), "{body}");
    assert!(body.contains("broken-trap"), "the request id: {body}");

    // After the head: declared 100, wrote 10, then finished: closed short.
    let mut stream = send_get(addr, "/misbehave/short-body", "broken-short").await;
    let wire = read_all(&mut stream, Duration::from_secs(5)).await;
    let (head, body) = wire.head_and_body();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 100"), "{head}");
    assert!(
        wire.closed,
        "the connection must be closed: {:?}",
        wire.text()
    );
    assert!(body.len() < 100, "{body:?}");

    // Declared 10, wrote 20: never the 10 bytes that would look complete.
    let mut stream = send_get(addr, "/misbehave/long-body", "broken-long").await;
    let wire = read_all(&mut stream, Duration::from_secs(5)).await;
    let (head, body) = wire.head_and_body();
    assert!(head.contains("content-length: 10"), "{head}");
    assert!(
        wire.closed && body.len() < 10,
        "a long body must be cut short and the connection closed; got {:?} (closed: {})",
        String::from_utf8_lossy(&body),
        wire.closed
    );

    // Chunked, then the guest traps or runs out of time: no terminating chunk.
    for (path, id) in [
        ("/misbehave/trap-mid-body", "broken-trap-mid"),
        ("/misbehave/slow-mid-body?ms=5000", "broken-slow-mid"),
    ] {
        let mut stream = send_get(addr, path, id).await;
        let wire = read_all(&mut stream, Duration::from_secs(10)).await;
        let (head, body) = wire.head_and_body();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("transfer-encoding: chunked"),
            "{path}: {head}"
        );
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(body.contains("partial"), "{path}: {body:?}");
        assert!(
            !body.ends_with("0\r\n\r\n"),
            "{path}: the body must not end with the terminating chunk: {body:?}"
        );
        assert!(wire.closed, "{path}: the connection must be closed");
    }

    // Each is logged as an error with app, version and cause.
    for (id, cause) in [
        ("broken-trap", "app_trapped"),
        ("broken-short", "content-length: 100 but wrote 10 bytes"),
        (
            "broken-long",
            "content-length: 10 but wrote at least 20 bytes",
        ),
        ("broken-trap-mid", "app_trapped"),
        ("broken-slow-mid", "app_timeout"),
    ] {
        let is_error = |r: &runway_api::v1::LogEntry| {
            r.kind == LogKind::Error
                && r.level == LogLevel::Error
                && r.version.as_deref() == Some("0.1.0")
                && r.message.as_deref().unwrap_or("").contains(cause)
        };
        let rows = rows_for(&env, "misbehave", id, |rows| rows.iter().any(is_error)).await;
        assert!(
            rows.iter().any(is_error),
            "{id}: no error row with {cause:?} in {rows:#?}"
        );
    }

    // The app itself is fine.
    assert_eq!(
        env.get_text("/misbehave/ok").await,
        (200, "ok\n".to_string())
    );
}

/// With a single instance slot, the next request is served within moments
/// (not at the abandoned guest's 30 s deadline) only if the abandoned guest
/// was stopped. The guest stops at its next yield, so a request sent in the
/// same instant may still find the app at its concurrency limit (503
/// `app_busy`, answered at once): such answers are retried for a moment.
async fn served_at_once(env: &TestEnv) {
    let started = Instant::now();
    let mut status;
    loop {
        let response = env
            .http
            .get(format!("{}/misbehave/ok", env.url))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("the next request is answered");
        status = response.status();
        if status != 503 || started.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status, 200,
        "the abandoned guest still holds the only instance slot"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the next request waited {:?} for the abandoned guest",
        started.elapsed()
    );
}

async fn assert_logged_499(env: &TestEnv, request_id: &str) {
    let has_499 = |rows: &[runway_api::v1::LogEntry]| {
        rows.iter()
            .any(|r| r.kind == LogKind::Request && r.status == Some(499))
    };
    let rows = rows_for(env, "misbehave", request_id, has_499).await;
    assert!(
        has_499(&rows),
        "{request_id}: no 499 request row in {rows:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_the_head_stops_its_guest() {
    let env = TestEnv::start_with(|c| c.max_instances = 1).await;
    env.publish(&misbehave_with("timeout_ms = 30000")).await;
    let addr = addr(&env);

    // A guest that waits, then one that computes: both stopped when their
    // client leaves, long before their 30 s deadline.
    for (path, id) in [
        ("/misbehave/sleep?ms=25000", "left-sleeping"),
        ("/misbehave/loop", "left-looping"),
    ] {
        let stream = send_get(addr, path, id).await;
        // Let the guest start and take the slot.
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(stream);
        served_at_once(&env).await;
        assert_logged_499(&env, id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_body_stops_its_guest() {
    let env = TestEnv::start_with(|c| c.max_instances = 1).await;
    env.publish(&misbehave_with("timeout_ms = 30000")).await;
    let addr = addr(&env);

    let mut stream = send_get(addr, "/misbehave/slow-mid-body?ms=25000", "left-mid-body").await;
    let seen = read_until(&mut stream, b"partial").await;
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
        "{seen:?}"
    );
    drop(stream);
    served_at_once(&env).await;
    assert_logged_499(&env, "left-mid-body").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_responses_through_the_balancer_take_no_front_end_out() {
    let env = TestEnv::start_with(|c| c.farm = 3).await;
    env.publish(&package("examples/hello")).await;
    env.publish(&misbehave_with("timeout_ms = 1500")).await;

    // The app breaks its response at once: a front-end may close the
    // connection before a byte of it went out.
    for _ in 0..3 {
        let _ = env
            .http
            .get(format!("{}/misbehave/broken-now", env.url))
            .send()
            .await
            .and_then(|r| r.error_for_status());
    }

    // hello is still served by every front-end.
    let mut served_by = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..12 {
        let response = env.get("/hello/").await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let frontend = response.headers()["x-runway-frontend"]
            .to_str()
            .unwrap()
            .to_string();
        *served_by.entry(frontend).or_default() += 1;
    }
    assert_eq!(served_by.len(), 3, "hello by front-end: {served_by:?}");
}
