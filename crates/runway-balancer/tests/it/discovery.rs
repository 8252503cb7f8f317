//! Controller discovery: the token, new front-ends joining, leaving ones
//! drained (in-flight requests finish), a failing controller changing
//! nothing, and the start errors.

use std::time::Duration;

use http::{Method, StatusCode};
use runway_api::v1::FrontendState;
use runway_balancer::{Balancer, Discovery};

use crate::support::*;

#[tokio::test]
async fn front_ends_join_and_leaving_ones_are_drained() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let controller = FakeController::start(vec![frontend("fe-a", &a)]).await;
    let balancer = start(controller_config(&controller, TOKEN)).await;
    let http = Http::new(balancer.addr());

    let upstreams = balancer.upstreams();
    assert_eq!(upstreams.len(), 1);
    assert_eq!(upstreams[0].name, "fe-a");
    assert_eq!(upstreams[0].url, a.url());
    assert!(upstreams[0].in_pool);
    assert_eq!(http.get("/x").await.upstream(), "fe-a");

    // A new front-end is picked up within a couple of polls.
    controller.set(vec![frontend("fe-a", &a), frontend("fe-b", &b)]);
    eventually("fe-b joins", || {
        status(&balancer, "fe-b").is_some_and(|s| s.in_pool)
    })
    .await;
    let mut served = Vec::new();
    for _ in 0..4 {
        served.push(http.get("/x").await.upstream());
    }
    assert!(served.contains(&"fe-b".to_string()), "{served:?}");

    // A request in flight on one of them...
    let held = http.request(Method::GET, "/hold").body(empty()).unwrap();
    let held = tokio::spawn({
        let http = Http::new(balancer.addr());
        async move { http.call(held).await }
    });
    let holds = |u: &FakeUpstream| u.seen().iter().any(|s| s.uri.path() == "/hold");
    eventually("the slow request arrives", || holds(&a) || holds(&b)).await;
    let ((holder, holder_name), (other, other_name)) = if holds(&a) {
        ((&a, "fe-a"), (&b, "fe-b"))
    } else {
        ((&b, "fe-b"), (&a, "fe-a"))
    };
    // ...while its front-end leaves discovery.
    controller.set(vec![frontend(other_name, other)]);
    eventually("the holder drains", || {
        status(&balancer, holder_name).is_some_and(|s| s.draining && !s.in_pool)
    })
    .await;
    assert_eq!(status(&balancer, holder_name).unwrap().outstanding, 1);
    let holder_hits = holder.hits();
    for _ in 0..5 {
        assert_eq!(http.get("/x").await.upstream(), other_name);
    }
    assert_eq!(
        holder.hits(),
        holder_hits,
        "a draining front-end got a new request"
    );

    // The in-flight request finishes normally, then the drained one is forgotten.
    holder.release();
    let reply = bounded("held request", held).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "released");
    assert_eq!(reply.upstream(), holder_name);
    eventually("the drained front-end is forgotten", || {
        status(&balancer, holder_name).is_none()
    })
    .await;
    balancer.shutdown().await;
}

#[tokio::test]
async fn only_front_ends_that_take_traffic_are_pooled() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let c = FakeUpstream::start().await;
    let d = FakeUpstream::start().await;
    let mut disabled = frontend("fe-b", &b);
    disabled.enabled = false;
    let mut catching_up = frontend("fe-c", &c);
    catching_up.state = FrontendState::CatchingUp;
    let mut timers_only = frontend("fe-d", &d);
    timers_only.flags.serves_apps = false;
    let controller = FakeController::start(vec![
        frontend("fe-a", &a),
        disabled,
        catching_up.clone(),
        timers_only,
    ])
    .await;
    let balancer = start(controller_config(&controller, TOKEN)).await;
    let names: Vec<_> = balancer.upstreams().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["fe-a"]);

    // Disabling a pooled front-end drains it; a ready one joins.
    let mut a_disabled = frontend("fe-a", &a);
    a_disabled.enabled = false;
    catching_up.state = FrontendState::Ready;
    controller.set(vec![a_disabled, catching_up]);
    eventually("fe-c replaces fe-a", || {
        let upstreams = balancer.upstreams();
        upstreams.len() == 1 && upstreams[0].name == "fe-c" && upstreams[0].in_pool
    })
    .await;
    assert_eq!(
        Http::new(balancer.addr()).get("/x").await.upstream(),
        "fe-c"
    );
    balancer.shutdown().await;
}

#[tokio::test]
async fn a_failing_controller_keeps_the_last_known_list() {
    let a = FakeUpstream::start().await;
    let controller = FakeController::start(vec![frontend("fe-a", &a)]).await;
    let balancer = start(controller_config(&controller, TOKEN)).await;
    let http = Http::new(balancer.addr());

    controller.set_failing(true);
    controller.set(Vec::new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(status(&balancer, "fe-a").unwrap().in_pool);
    assert_eq!(http.get("/x").await.upstream(), "fe-a");

    controller.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(status(&balancer, "fe-a").unwrap().in_pool);
    assert_eq!(http.get("/x").await.status, StatusCode::OK);
    balancer.shutdown().await;
}

#[tokio::test]
async fn polls_carry_the_token_every_interval() {
    let a = FakeUpstream::start().await;
    let controller = FakeController::start(vec![frontend("fe-a", &a)]).await;
    let balancer = start(controller_config(&controller, TOKEN)).await;
    // The fake controller only counts polls with the right bearer token.
    let first = controller.polls();
    assert!(first >= 1, "the first discovery happens in start");
    eventually("polls continue", || controller.polls() >= first + 3).await;
    balancer.shutdown().await;
}

#[tokio::test]
async fn a_dead_controller_is_a_clear_start_error() {
    let dead = dead_addr().await;
    let config = config(Discovery::Controller {
        url: format!("http://{dead}").parse().unwrap(),
        token: TOKEN.into(),
        interval: Duration::from_millis(50),
    });
    let error = bounded("start", Balancer::start(config))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach the controller at http://{dead} (connection refused): \
             is `runway controller serve` running there? check --controller"
        )
    );
}

#[tokio::test]
async fn a_refused_token_is_a_clear_start_error() {
    let controller = FakeController::start(Vec::new()).await;
    let config = controller_config(&controller, "not-the-token");
    let error = bounded("start", Balancer::start(config))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "the controller at http://{} refused the token (401): \
             pass an admin or read token with --token",
            controller.addr
        )
    );
}

#[tokio::test]
async fn something_that_is_not_a_controller_is_a_clear_start_error() {
    // A front-end answers 404 to the API path.
    let not_a_controller = FakeUpstream::start().await;
    let config = config(Discovery::Controller {
        url: not_a_controller.url(),
        token: TOKEN.into(),
        interval: Duration::from_millis(50),
    });
    let error = bounded("start", Balancer::start(config))
        .await
        .err()
        .unwrap();
    let message = error.to_string();
    // The fake front-end echoes, so it answers 200 with an empty body.
    assert!(
        message.starts_with(&format!(
            "the controller at http://{} sent a front-end list the balancer cannot read",
            not_a_controller.addr
        )),
        "{message}"
    );
}

/// With `--pass-api`, API requests go to the controller discovery follows:
/// once the first controller is gone and discovery moved to the other one
/// (the new active controller after a takeover), so do API requests. Before,
/// they kept going to the first `--controller` only.
#[tokio::test]
async fn api_requests_follow_the_controller_discovery_follows() {
    let a = FakeUpstream::start().await;
    let first = FakeController::start(vec![frontend("fe-a", &a)]).await;
    let second = FakeController::start(vec![frontend("fe-a", &a)]).await;
    let mut config = controller_config(&first, TOKEN);
    config.standby_controllers = vec![second.url()];
    config.platform = Some(first.url());
    let balancer = start(config).await;
    let http = Http::new(balancer.addr());
    let api = || {
        http.request(Method::GET, "/_runway/api/v1/frontends")
            .header(http::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(empty())
            .unwrap()
    };
    let before = first.polls();
    assert_eq!(http.call(api()).await.status, StatusCode::OK);
    assert!(
        first.polls() > before,
        "the API request reached the first controller"
    );

    first.kill();
    let polled = second.polls();
    eventually("discovery moves to the second controller", || {
        second.polls() >= polled + 2
    })
    .await;
    let before = second.polls();
    let reply = http.call(api()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(
        second.polls() > before,
        "the API request reached the second controller"
    );
    balancer.shutdown().await;
}
