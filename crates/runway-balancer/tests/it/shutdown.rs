//! Graceful shutdown: stop accepting, let in-flight requests finish within the
//! grace, cut them after it.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use crate::support::*;

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let a = FakeUpstream::start().await;
    let balancer = start(static_config(&[&a])).await;
    let addr = balancer.addr();
    let http = Http::new(addr);

    let held = http.request(Method::GET, "/hold").body(empty()).unwrap();
    let held = tokio::spawn(async move { http.call(held).await });
    eventually("the slow request arrives", || a.hits() == 1).await;

    let shutdown = tokio::spawn(balancer.shutdown());
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "the balancer still accepts connections while shutting down"
    );
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the request"
    );

    a.release();
    let reply = bounded("held request", held).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "released");
    bounded("shutdown", shutdown).await.unwrap();
}

#[tokio::test]
async fn requests_past_the_grace_are_cut() {
    let a = FakeUpstream::start().await;
    let mut config = static_config(&[&a]);
    config.shutdown_grace = Duration::from_millis(200);
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());

    let held = http.request(Method::GET, "/hold").body(empty()).unwrap();
    let held = tokio::spawn(async move { http.client_request(held).await });
    eventually("the slow request arrives", || a.hits() == 1).await;

    let started = Instant::now();
    bounded("shutdown", balancer.shutdown()).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "shutdown took only {took:?}"
    );
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let outcome = bounded("held request", held).await.unwrap();
    assert!(
        outcome.is_err(),
        "the cut request must fail, got {outcome:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_delay_shutdown() {
    let a = FakeUpstream::start().await;
    let balancer = start(static_config(&[&a])).await;
    let http = Http::new(balancer.addr());
    assert_eq!(http.get("/x").await.status, StatusCode::OK);
    // The client keeps its connection open; shutdown must not wait for it.
    let started = Instant::now();
    bounded("shutdown", balancer.shutdown()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(http);
}
