//! The workers' kept-alive connections to the front-ends: reused across
//! requests, given back only when an answer was read to the end, replaced
//! when the front-end closed them.

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::support::*;

fn one_upstream_quiet(upstream: &FakeUpstream) -> runway_balancer::BalancerConfig {
    let mut config = static_config(&[upstream]);
    // Health checks have their own connection; keep them out of the count.
    config.health.interval = Duration::from_secs(60);
    config
}

#[tokio::test]
async fn reuses_connections_to_front_ends() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(one_upstream_quiet(&upstream)).await;
    let http = Http::new(balancer.addr());

    for _ in 0..20 {
        assert_eq!(http.get("/x").await.status, StatusCode::OK);
    }
    assert_eq!(upstream.hits(), 20);
    // The health check's connection and the worker's one, not 20.
    assert_eq!(upstream.connections(), 2);
    balancer.shutdown().await;
}

#[tokio::test]
async fn bodiless_answers_give_the_connection_back() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(one_upstream_quiet(&upstream)).await;
    let http = Http::new(balancer.addr());

    for _ in 0..5 {
        let head = http.request(Method::HEAD, "/x").body(empty()).unwrap();
        assert_eq!(http.call(head).await.status, StatusCode::OK);
        assert_eq!(http.get("/no-content").await.status, StatusCode::NO_CONTENT);
        assert_eq!(http.get("/x").await.status, StatusCode::OK);
    }
    assert_eq!(upstream.hits(), 15);
    assert_eq!(upstream.connections(), 2);
    balancer.shutdown().await;
}

#[tokio::test]
async fn connections_the_front_end_closed_are_replaced_without_errors() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(one_upstream_quiet(&upstream)).await;
    let http = Http::new(balancer.addr());
    assert_eq!(http.get("/x").await.status, StatusCode::OK);

    // The front-end restarts: every kept-alive connection to it is closed.
    upstream.kill();
    upstream.revive().await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    for _ in 0..3 {
        assert_eq!(http.get("/x").await.status, StatusCode::OK);
    }
    let state = status(&balancer, &upstream.name()).unwrap();
    assert!(state.in_pool && !state.ejected, "{state:?}");
    balancer.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_answer_frees_its_upstream() {
    let upstream = FakeUpstream::start().await;
    let balancer = start(one_upstream_quiet(&upstream)).await;

    {
        let http = Http::new(balancer.addr());
        let request = http
            .request(Method::GET, "/stream-response")
            .body(empty())
            .unwrap();
        let mut body = http.send(request).await.into_body();
        let first = bounded("first chunk", body.frame()).await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "first");
        assert_eq!(status(&balancer, &upstream.name()).unwrap().outstanding, 1);
        // The client goes away with the answer half read.
    }
    eventually("the request stops counting", || {
        status(&balancer, &upstream.name()).unwrap().outstanding == 0
    })
    .await;
    upstream.release();

    // The cut connection was not given back: the next requests work.
    let http = Http::new(balancer.addr());
    for _ in 0..3 {
        assert_eq!(http.get("/x").await.status, StatusCode::OK);
    }
    balancer.shutdown().await;
}
