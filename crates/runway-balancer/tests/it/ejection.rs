//! Passive ejection is for failures of the front-end itself: a request that
//! reached a front-end and got a broken answer (one app's problem) takes no
//! front-end out of the pool, and passive signals never take more than
//! `max_ejection_percent` of the pool out. A broken exchange is retried only
//! when the request is idempotent and no byte of an answer had arrived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use http::StatusCode;
use runway_balancer::{BalancerConfig, Discovery, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::*;

/// Round-robin, health checks too slow to matter, long ejections, the
/// default ejection cap.
fn passive(discovery: Discovery) -> BalancerConfig {
    let mut config = config(discovery);
    config.policy = Policy::RoundRobin;
    config.health.interval = Duration::from_secs(60);
    config.eject_for = Duration::from_secs(60);
    config
}

fn statics(upstreams: &[&FakeUpstream]) -> Discovery {
    Discovery::Static(upstreams.iter().map(|u| u.url()).collect())
}

#[tokio::test]
async fn broken_answers_eject_no_front_end() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let c = FakeUpstream::start().await;
    let balancer = start(passive(statics(&[&a, &b, &c]))).await;
    let http = Http::new(balancer.addr());

    // Each front-end reads the request and closes the connection without a
    // byte of answer, like a front-end whose app broke its response.
    for _ in 0..3 {
        let reply = http.get("/die-before-answer").await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    }
    for upstream in [&a, &b, &c] {
        let state = status(&balancer, &upstream.name()).unwrap();
        assert!(
            state.in_pool && !state.ejected,
            "a broken answer took {} out: {state:?}",
            upstream.name()
        );
    }

    // Every front-end keeps serving the other apps.
    let (a0, b0, c0) = (a.hits(), b.hits(), c.hits());
    for _ in 0..6 {
        assert_eq!(http.get("/hello/").await.status, StatusCode::OK);
    }
    assert_eq!(
        (a.hits() - a0, b.hits() - b0, c.hits() - c0),
        (2, 2, 2),
        "hello is served by every front-end"
    );
    balancer.shutdown().await;
}

/// A front-end on 127.0.0.1 that passes its health checks and answers every
/// other request with half a response head, then closes the connection.
struct HalfAnswer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HalfAnswer {
    async fn start() -> HalfAnswer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    loop {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        if head.starts_with(b"GET /_runway/ready ") {
                            let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                            if stream.write_all(ok.as_bytes()).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        counter.fetch_add(1, SeqCst);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-").await;
                        let _ = stream.flush().await;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                });
            }
        });
        HalfAnswer { addr, hits, task }
    }

    fn url(&self) -> url::Url {
        format!("http://{}", self.addr).parse().unwrap()
    }
}

impl Drop for HalfAnswer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_request_whose_answer_had_started_is_not_retried() {
    let a = HalfAnswer::start().await;
    let b = HalfAnswer::start().await;
    let balancer = start(passive(Discovery::Static(vec![a.url(), b.url()]))).await;
    let http = Http::new(balancer.addr());

    let reply = http.get("/x").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(
        a.hits.load(SeqCst) + b.hits.load(SeqCst),
        1,
        "a GET whose answer had begun must not be sent to another front-end"
    );
    assert!(
        balancer.upstreams().iter().all(|u| u.in_pool),
        "{:?}",
        balancer.upstreams()
    );
    balancer.shutdown().await;
}

#[tokio::test]
async fn passive_ejection_never_takes_more_than_the_cap() {
    let upstreams = [
        FakeUpstream::start().await,
        FakeUpstream::start().await,
        FakeUpstream::start().await,
        FakeUpstream::start().await,
    ];
    let refs: Vec<&FakeUpstream> = upstreams.iter().collect();
    let config = passive(statics(&refs));
    assert_eq!(config.max_ejection_percent, 50, "the default");
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());

    // Three of four refuse connections: a failure of the front-end itself,
    // but at most half the pool may be ejected on that signal alone.
    for upstream in &upstreams[..3] {
        upstream.kill();
    }
    for _ in 0..8 {
        // Whatever the balancer tried first, it can always reach the live one.
        let reply = http.get("/x").await;
        assert!(
            reply.status == StatusCode::OK || reply.status == StatusCode::BAD_GATEWAY,
            "{}",
            reply.text()
        );
    }
    let ejected = balancer.upstreams().iter().filter(|u| u.ejected).count();
    assert_eq!(ejected, 2, "{:?}", balancer.upstreams());
    let live = status(&balancer, &upstreams[3].name()).unwrap();
    assert!(live.in_pool && !live.ejected, "{live:?}");
    balancer.shutdown().await;
}

#[tokio::test]
async fn a_single_front_end_is_never_passively_ejected_by_default() {
    let a = FakeUpstream::start().await;
    let balancer = start(passive(statics(&[&a]))).await;
    let http = Http::new(balancer.addr());
    a.kill();
    assert_eq!(http.get("/x").await.status, StatusCode::BAD_GATEWAY);
    assert!(!status(&balancer, &a.name()).unwrap().ejected);
    // Back again: served at once, no ejection to wait out.
    a.revive().await;
    assert_eq!(http.get("/x").await.status, StatusCode::OK);
    balancer.shutdown().await;
}
