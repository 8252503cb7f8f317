//! Test support shared by the scheduler's modules (`timers`, `jobs`,
//! `email`): waiting for a condition, reading the counters a test guest
//! keeps in its key-value store, publishing to a farm.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runway_api::v1::DeploymentStatus;
use runway_manifest::Package;

use crate::farm_support::Farm;

/// Polls `check` every 100 ms until it gives a value; panics naming `what`
/// after `within`.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The counters of test guest `app` (`GET /{app}/keys?prefix=…`, `key=value`
/// lines) whose key starts with `prefix`.
pub async fn counters(
    http: &reqwest::Client,
    url: &str,
    app: &str,
    prefix: &str,
) -> BTreeMap<String, u64> {
    let text = http
        .get(format!("{url}/{app}/keys?prefix={prefix}"))
        .send()
        .await
        .expect("the app answers")
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().expect("a counter")))
        .collect()
}

/// Publishes and deploys `package` to the farm; panics unless it succeeded.
pub async fn publish(farm: &Farm, package: &Package) {
    let (result, _) = farm
        .client
        .publish(package.to_bytes(), true, None)
        .await
        .expect("publish succeeds");
    let d = result.deployment.expect("deployed");
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{d:?}");
}
