//! Passive ejection and the retry rule: an idempotent request that could not
//! be sent goes to another front-end, body and all; POST/PATCH, bodies over
//! 64 KiB and anything after response headers are never retried.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use runway_balancer::{BalancerConfig, Policy};

use crate::support::*;

/// Round-robin starts at the first upstream, and active checks are too slow
/// to notice a death during the test: only passive ejection acts, and may
/// take the whole pool out (the cap has its own tests in `ejection`).
fn passive_only(upstreams: &[&FakeUpstream]) -> BalancerConfig {
    let mut config = static_config(upstreams);
    config.policy = Policy::RoundRobin;
    config.health.interval = Duration::from_secs(60);
    config.eject_for = Duration::from_secs(60);
    config.max_ejection_percent = 100;
    config
}

#[tokio::test]
async fn get_is_retried_on_another_upstream_and_the_dead_one_ejected() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());
    a.kill();

    // The first pick is `a`: refused, retried on `b`.
    let reply = http.get("/first").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream(), b.name());
    let a_state = status(&balancer, &a.name()).unwrap();
    assert!(a_state.ejected && !a_state.in_pool, "{a_state:?}");
    assert!(a_state.healthy, "ejection is not a health verdict");

    for _ in 0..5 {
        assert_eq!(http.get("/x").await.upstream(), b.name());
    }
    assert_eq!(b.hits(), 6);
    balancer.shutdown().await;
}

#[tokio::test]
async fn post_is_never_retried() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());
    a.kill();

    let reply = http.post("/notes/", "new note").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let body = reply.json();
    assert_eq!(body["code"], "upstream_unreachable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("no answer from front-end {} (", a.name())),
        "{message}"
    );
    assert_eq!(body["details"]["tried"], serde_json::json!([a.name()]));
    assert_eq!(b.hits(), 0);

    // `a` is ejected now, so the next POST goes to `b`.
    let reply = http.post("/notes/", "new note").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream(), b.name());
    balancer.shutdown().await;
}

#[tokio::test]
async fn small_put_is_retried_with_its_body() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());
    a.kill();

    let body = Bytes::from(vec![b'k'; 64 * 1024]);
    let request = http
        .request(Method::PUT, "/kv/item")
        .body(full(body.clone()))
        .unwrap();
    let reply = http.call(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream(), b.name());
    assert_eq!(b.last_seen().body, body);
    balancer.shutdown().await;
}

#[tokio::test]
async fn put_with_a_body_over_64_kib_is_not_retried() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());
    a.kill();

    let request = http
        .request(Method::PUT, "/kv/item")
        .body(full(vec![b'k'; 64 * 1024 + 1]))
        .unwrap();
    let reply = http.call(request).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json()["code"], "upstream_unreachable");
    assert_eq!(b.hits(), 0);
    balancer.shutdown().await;
}

#[tokio::test]
async fn attempts_are_bounded_and_each_upstream_tried_once() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let c = FakeUpstream::start().await;
    let mut config = passive_only(&[&a, &b, &c]);
    config.max_attempts = 2;
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());
    a.kill();
    b.kill();
    c.kill();

    let reply = http.get("/x").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let body = reply.json();
    assert_eq!(body["code"], "upstream_unreachable");
    assert_eq!(
        body["details"]["tried"],
        serde_json::json!([a.name(), b.name()])
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "no answer from front-ends {}, {} (",
            a.name(),
            b.name()
        )),
        "{message}"
    );

    // `c` is the only one left; then nobody is.
    let reply = http.get("/x").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.json()["details"]["tried"],
        serde_json::json!([c.name()])
    );
    let reply = http.get("/x").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["code"], "no_upstream");
    balancer.shutdown().await;
}

#[tokio::test]
async fn nothing_is_retried_after_response_headers() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());

    let request = http
        .request(Method::GET, "/reset-after-headers")
        .body(empty())
        .unwrap();
    let response = http.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-runway-upstream"], a.name().as_str());
    let body = bounded("broken body", response.into_body().collect()).await;
    assert!(body.is_err(), "the client must see the body break");
    assert_eq!(b.hits(), 0);
    balancer.shutdown().await;
}

#[tokio::test]
async fn an_ejection_runs_out() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let mut config = passive_only(&[&a, &b]);
    config.eject_for = Duration::from_millis(300);
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());
    a.kill();

    assert_eq!(http.get("/x").await.upstream(), b.name());
    assert!(status(&balancer, &a.name()).unwrap().ejected);
    a.revive().await;
    eventually("the ejection runs out", || {
        status(&balancer, &a.name()).unwrap().in_pool
    })
    .await;
    let mut served_by_a = 0;
    for _ in 0..4 {
        if http.get("/x").await.upstream() == a.name() {
            served_by_a += 1;
        }
    }
    assert_eq!(served_by_a, 2);
    balancer.shutdown().await;
}

#[tokio::test]
async fn a_bodiless_get_is_retried_when_the_front_end_dies_before_answering() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());

    // Whichever front-end gets it first dies; the other is asked next.
    let reply = http.get("/die-before-answer").await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_GATEWAY,
        "both died: {}",
        reply.text()
    );
    assert_eq!(a.hits() + b.hits(), 2, "sent to each front-end once");
    assert_eq!(
        reply.json()["details"]["tried"].as_array().unwrap().len(),
        2
    );

    // Neither was ejected: the request reached them, so what broke is no
    // failure of the front-end itself.
    assert!(balancer.upstreams().iter().all(|u| u.in_pool));
    balancer.shutdown().await;

    // A POST that was written is never sent again.
    let balancer = start(passive_only(&[&a, &b])).await;
    let http = Http::new(balancer.addr());
    let (a0, b0) = (a.hits(), b.hits());
    let request = http
        .request(Method::POST, "/die-before-answer")
        .body(full("once"))
        .unwrap();
    let reply = http.call(request).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(a.hits() + b.hits() - a0 - b0, 1);
    balancer.shutdown().await;
}
