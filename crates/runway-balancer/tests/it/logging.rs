//! The access log: one info event per request under `runway_balancer::access`.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use http::{Method, StatusCode};
use runway_balancer::Policy;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::*;

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        Capture
    }
}

/// Installs (once per test binary) a subscriber that keeps access log lines.
fn capture_access_log() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(Capture)
            .with_ansi(false);
        let filter = Targets::new().with_target("runway_balancer::access", tracing::Level::INFO);
        let subscriber = tracing_subscriber::registry().with(layer).with(filter);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

fn access_line(request_id: &str) -> Option<String> {
    let log = LOG.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .find(|line| line.contains(request_id))
        .map(str::to_string)
}

#[tokio::test]
async fn every_request_is_logged_with_its_outcome() {
    capture_access_log();
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let mut config = static_config(&[&a, &b]);
    config.policy = Policy::RoundRobin;
    config.health.interval = Duration::from_secs(60);
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());
    a.kill();

    // Refused by `a`, retried on `b`: two attempts.
    let request = http
        .request(Method::GET, "/notes/list?page=2")
        .header("x-request-id", "log-test-1")
        .body(empty())
        .unwrap();
    assert_eq!(http.call(request).await.status, StatusCode::OK);
    eventually("the access line is written", || {
        access_line("log-test-1").is_some()
    })
    .await;
    let line = access_line("log-test-1").unwrap();
    for part in [
        " INFO ",
        "runway_balancer::access",
        "method=GET",
        "path=\"/notes/list?page=2\"",
        "status=200",
        &format!("upstream=\"{}\"", b.name()),
        "attempts=2",
        "elapsed_ms=",
        "request_id=\"log-test-1\"",
    ] {
        assert!(line.contains(part), "{part:?} is missing from {line:?}");
    }

    // An answer made by the balancer itself is logged too.
    b.kill();
    let request = http
        .request(Method::POST, "/notes/")
        .header("x-request-id", "log-test-2")
        .body(full("x"))
        .unwrap();
    assert_eq!(http.call(request).await.status, StatusCode::BAD_GATEWAY);
    eventually("the access line is written", || {
        access_line("log-test-2").is_some()
    })
    .await;
    let line = access_line("log-test-2").unwrap();
    assert!(
        line.contains("status=502") && line.contains("attempts=1"),
        "{line}"
    );
    balancer.shutdown().await;
}
