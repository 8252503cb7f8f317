//! Configuration errors: each names what is wrong and the flag that fixes it.

use std::time::Duration;

use runway_balancer::{Balancer, BalancerConfig, Discovery, Policy, defaults};

use crate::support::*;

async fn start_error(config: BalancerConfig) -> String {
    bounded("start", Balancer::start(config))
        .await
        .err()
        .expect("start must fail")
        .to_string()
}

fn with_upstreams(urls: &[&str]) -> BalancerConfig {
    config(Discovery::Static(
        urls.iter().map(|u| u.parse().unwrap()).collect(),
    ))
}

#[test]
fn defaults_are_those_of_the_brief() {
    let config = defaults(
        "127.0.0.1:9080".parse().unwrap(),
        Discovery::Static(Vec::new()),
    );
    assert_eq!(config.policy, Policy::LeastOutstanding);
    assert_eq!(config.health.path, "/_runway/ready");
    assert_eq!(config.health.interval, Duration::from_secs(1));
    assert_eq!(config.health.timeout, Duration::from_secs(1));
    assert_eq!((config.health.rise, config.health.fall), (2, 2));
    assert_eq!(config.connect_timeout, Duration::from_secs(1));
    assert_eq!(config.eject_for, Duration::from_secs(5));
    assert_eq!(config.max_ejection_percent, 50);
    assert_eq!(config.max_attempts, 3);
    assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    assert_eq!("round-robin".parse::<Policy>().unwrap(), Policy::RoundRobin);
    assert_eq!(
        "least-outstanding".parse::<Policy>().unwrap(),
        Policy::LeastOutstanding
    );
    assert_eq!(
        "random".parse::<Policy>().unwrap_err().to_string(),
        "invalid --policy: random; use least-outstanding or round-robin"
    );
}

#[tokio::test]
async fn a_listen_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let a = FakeUpstream::start().await;
    let mut config = static_config(&[&a]);
    config.listen = addr;
    assert_eq!(
        start_error(config).await,
        format!("cannot listen on {addr}: address in use; pick another with --listen")
    );
}

#[tokio::test]
async fn bad_upstream_lists_are_named() {
    assert_eq!(
        start_error(with_upstreams(&[])).await,
        "no upstreams to balance over: pass at least one --upstream http://HOST:PORT, \
         or --controller URL to discover the front-ends"
    );
    assert_eq!(
        start_error(with_upstreams(&["https://127.0.0.1:9101"])).await,
        "the upstream https://127.0.0.1:9101/ is not http:// (the balancer speaks plain \
         HTTP/1.1 to front-ends; https is not supported); pass it as --upstream http://HOST:PORT"
    );
    assert_eq!(
        start_error(with_upstreams(&["http://127.0.0.1:9101/app"])).await,
        "the upstream http://127.0.0.1:9101/app has a path (/app); requests are forwarded \
         with their path unchanged, so give only scheme, host and port; \
         pass it as --upstream http://HOST:PORT"
    );
    assert_eq!(
        start_error(with_upstreams(&[
            "http://127.0.0.1:9101",
            "http://127.0.0.1:9101/"
        ]))
        .await,
        "the upstream 127.0.0.1:9101 is listed twice; pass each --upstream once"
    );
}

#[tokio::test]
async fn bad_controller_settings_are_named() {
    let controller = |url: &str, token: &str| {
        config(Discovery::Controller {
            url: url.parse().unwrap(),
            token: token.into(),
            interval: Duration::from_secs(1),
        })
    };
    assert_eq!(
        start_error(controller("ftp://127.0.0.1:9000", "t")).await,
        "the controller URL ftp://127.0.0.1:9000/ is not http:// (ftp); \
         pass it as --controller http://HOST:PORT"
    );
    assert!(
        start_error(controller("https://controller.example", "t"))
            .await
            .starts_with("the controller URL https://controller.example/ is https://")
    );
    assert_eq!(
        start_error(controller("http://127.0.0.1:9000", "")).await,
        "no token for the controller at http://127.0.0.1:9000: \
         pass an admin or read token with --token"
    );
    assert_eq!(
        start_error(controller("http://127.0.0.1:9000", "bad\ntoken")).await,
        "the token contains characters that cannot go in an HTTP header: \
         pass it with --token exactly as it was printed when it was created"
    );
}

#[tokio::test]
async fn addresses_with_credentials_are_refused() {
    let error = start_error(config(Discovery::Controller {
        url: "http://admin:hunter2@127.0.0.1:9000".parse().unwrap(),
        token: "t".into(),
        interval: Duration::from_secs(1),
    }))
    .await;
    assert!(
        error.contains("--controller") && error.contains("credentials") && error.contains("remove"),
        "{error}"
    );
    assert!(
        !error.contains("hunter2"),
        "the message repeats the password: {error}"
    );
    let error = start_error(with_upstreams(&["http://user:pw@127.0.0.1:9101"])).await;
    assert!(
        error.contains("--upstream") && error.contains("credentials") && error.contains("remove"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_connection_settings_are_named() {
    let a = FakeUpstream::start().await;
    let mut config = static_config(&[&a]);
    config.connections.max_connections = 0;
    assert_eq!(
        start_error(config).await,
        "--max-connections must be greater than 0 (default 10000)"
    );
}

#[tokio::test]
async fn bad_health_settings_are_named() {
    let a = FakeUpstream::start().await;
    let mut zero_rise = static_config(&[&a]);
    zero_rise.health.rise = 0;
    assert_eq!(
        start_error(zero_rise).await,
        "invalid --health-rise: 0; it must be at least 1"
    );
    let mut zero_fall = static_config(&[&a]);
    zero_fall.health.fall = 0;
    assert_eq!(
        start_error(zero_fall).await,
        "invalid --health-fall: 0; it must be at least 1"
    );
    let mut zero_interval = static_config(&[&a]);
    zero_interval.health.interval = Duration::ZERO;
    assert_eq!(
        start_error(zero_interval).await,
        "invalid --health-interval-ms: 0; it must be at least 1"
    );
    let mut no_attempts = static_config(&[&a]);
    no_attempts.max_attempts = 0;
    assert_eq!(
        start_error(no_attempts).await,
        "invalid max attempts: 0; it must be at least 1"
    );
}

#[tokio::test]
async fn an_ejection_cap_over_100_percent_is_refused() {
    let mut config = with_upstreams(&["http://127.0.0.1:9"]);
    config.max_ejection_percent = 101;
    assert_eq!(
        start_error(config).await,
        "invalid --max-ejection-percent: 101; it is a percentage of the front-ends: give 0 to 100"
    );
}
