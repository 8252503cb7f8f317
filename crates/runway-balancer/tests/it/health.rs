//! Active health checks: the immediate first check, `rise` and `fall`, and the
//! 503 when no front-end is ready.

use std::time::Duration;

use http::StatusCode;
use runway_balancer::Policy;

use crate::support::*;

#[tokio::test]
async fn failing_checks_take_an_upstream_out_and_passing_ones_bring_it_back() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let mut config = static_config(&[&a, &b]);
    config.policy = Policy::RoundRobin;
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());
    assert!(status(&balancer, &a.name()).unwrap().in_pool);

    let checks_before = a.health_hits();
    a.set_ready(false);
    eventually("a leaves the pool", || {
        !status(&balancer, &a.name()).unwrap().healthy
    })
    .await;
    assert!(
        a.health_hits() - checks_before >= 2,
        "out after fewer than `fall` = 2 failed checks"
    );
    let a_hits = a.hits();
    for _ in 0..6 {
        assert_eq!(http.get("/x").await.upstream(), b.name());
    }
    assert_eq!(a.hits(), a_hits);

    let checks_before = a.health_hits();
    a.set_ready(true);
    eventually("a is back", || {
        status(&balancer, &a.name()).unwrap().in_pool
    })
    .await;
    assert!(
        a.health_hits() - checks_before >= 2,
        "back after fewer than `rise` = 2 passing checks"
    );
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
async fn first_check_admits_a_new_upstream_at_once() {
    let a = FakeUpstream::start().await;
    let mut config = static_config(&[&a]);
    config.health.rise = 5;
    config.health.interval = Duration::from_secs(60);
    let balancer = start(config).await;
    // One check only (the immediate one), yet it serves.
    assert_eq!(a.health_hits(), 1);
    assert!(status(&balancer, &a.name()).unwrap().in_pool);
    let reply = Http::new(balancer.addr()).get("/x").await;
    assert_eq!(reply.status, StatusCode::OK);
    balancer.shutdown().await;
}

#[tokio::test]
async fn no_ready_upstream_is_a_503_with_an_error_body() {
    let a = FakeUpstream::start().await;
    a.set_ready(false);
    let mut config = static_config(&[&a]);
    config.health.rise = 3;
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());
    let state = status(&balancer, &a.name()).unwrap();
    assert!(!state.healthy && !state.in_pool);

    let reply = http.get("/notes/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["x-request-id"].len(), 32);
    assert_eq!(
        reply.text(),
        r#"{"code":"no_upstream","message":"no front-end is ready to serve this request; check `runway frontend list`","details":{}}"#
    );
    assert_eq!(a.hits(), 0);

    // A front-end that failed its first check needs `rise` passing checks.
    let checks_before = a.health_hits();
    a.set_ready(true);
    eventually("a joins", || status(&balancer, &a.name()).unwrap().in_pool).await;
    assert!(a.health_hits() - checks_before >= 3);
    assert_eq!(http.get("/notes/").await.status, StatusCode::OK);
    balancer.shutdown().await;
}
