//! Choosing an upstream: round-robin, and least-outstanding with its ties
//! broken round-robin.

use std::time::Duration;

use http::{Method, StatusCode};
use runway_balancer::Policy;

use crate::support::*;

#[tokio::test]
async fn round_robin_spreads_requests_evenly_in_order() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let c = FakeUpstream::start().await;
    let mut config = static_config(&[&a, &b, &c]);
    config.policy = Policy::RoundRobin;
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());

    let mut order = Vec::new();
    for _ in 0..30 {
        let reply = http.get("/x").await;
        assert_eq!(reply.status, StatusCode::OK);
        order.push(reply.upstream());
    }
    assert_eq!((a.hits(), b.hits(), c.hits()), (10, 10, 10));
    assert_eq!(order[..3], [a.name(), b.name(), c.name()]);
    assert_eq!(order[..3], order[3..6]);
    balancer.shutdown().await;
}

#[tokio::test]
async fn least_outstanding_avoids_the_busy_upstream() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let balancer = start(static_config(&[&a, &b])).await;
    let http = Http::new(balancer.addr());

    // One slow request occupies one upstream...
    let held = http.request(Method::GET, "/hold").body(empty()).unwrap();
    let held = tokio::spawn({
        let http = Http::new(balancer.addr());
        async move { http.call(held).await }
    });
    eventually("the slow request arrives", || a.hits() + b.hits() == 1).await;
    let (busy, idle) = if a.hits() == 1 { (&a, &b) } else { (&b, &a) };
    assert_eq!(status(&balancer, &busy.name()).unwrap().outstanding, 1);
    assert_eq!(status(&balancer, &idle.name()).unwrap().outstanding, 0);

    // ...so every other request goes to the idle one.
    for _ in 0..10 {
        assert_eq!(http.get("/x").await.upstream(), idle.name());
    }
    assert_eq!(busy.hits(), 1);

    busy.release();
    let reply = bounded("held request", held).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.upstream(), busy.name());
    eventually("the count drops back", || {
        status(&balancer, &busy.name()).unwrap().outstanding == 0
    })
    .await;
    balancer.shutdown().await;
}

#[tokio::test]
async fn least_outstanding_breaks_ties_round_robin() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let mut config = static_config(&[&a, &b]);
    config.health.interval = Duration::from_secs(60);
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());

    let mut previous = String::new();
    for _ in 0..10 {
        let upstream = http.get("/x").await.upstream();
        assert_ne!(upstream, previous, "an idle farm is served in turn");
        previous = upstream;
    }
    assert_eq!((a.hits(), b.hits()), (5, 5));
    balancer.shutdown().await;
}
