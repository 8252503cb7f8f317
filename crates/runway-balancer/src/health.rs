//! Active health checks and the health state machine of an upstream.
//!
//! Each upstream in discovery has one task that sends `GET {health.path}`
//! every `health.interval`, bounded by `health.timeout`; a 2xx answer is a
//! success, anything else (other status, connection error, timeout) a failure.
//!
//! ```text
//!            first check ok                      `fall` failures in a row
//!  (new) ─────────────────────▶ healthy ────────────────────────────────▶ unhealthy
//!    │                            ▲                                          │
//!    │ first check fails          └──────────────────────────────────────────┘
//!    └──────────▶ unhealthy               `rise` successes in a row
//! ```
//!
//! A newly discovered upstream starts unhealthy and is checked at once; the
//! *first* success puts it in the pool without waiting for `rise` checks, so
//! a front-end that joins the farm serves within one round trip. From then on
//! `rise` and `fall` apply. (At [`crate::Balancer::start`] the first checks
//! of the initial upstreams are awaited, so a balancer that has started
//! serves at once.)
//!
//! Passive ejection (the front-end refused or dropped a connection before
//! the request went out, see [`crate::proxy`]) is separate: it keeps the
//! upstream out of the pool until its deadline whatever the health checks
//! say, and the health state decides after that. It never takes more than
//! `max_ejection_percent` of the pool out; failed health checks are not
//! capped.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Limited};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::client::{HttpClient, UpstreamBody};
use crate::config::HealthConfig;
use crate::pool::Upstream;

/// Health-check answers are read (so the connection can be reused) up to this
/// size; a bigger body still counts by its status.
const MAX_HEALTH_BODY: usize = 64 * 1024;

pub(crate) struct Checker {
    client: HttpClient,
    config: HealthConfig,
}

impl Checker {
    pub fn new(client: HttpClient, config: HealthConfig) -> Checker {
        Checker { client, config }
    }

    /// The health-check task of one upstream. With `check_now`, the first
    /// check runs immediately; otherwise after one interval (the caller
    /// already did the first one).
    pub fn spawn(self: &Arc<Self>, upstream: Arc<Upstream>, check_now: bool) -> JoinHandle<()> {
        let checker = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(checker.config.interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            if !check_now {
                ticks.tick().await;
            }
            loop {
                ticks.tick().await;
                checker.check_and_record(&upstream).await;
            }
        })
    }

    /// One check, and its effect on the upstream's health.
    pub async fn check_and_record(&self, upstream: &Upstream) {
        let outcome = self.check(upstream).await;
        self.record(upstream, outcome);
    }

    async fn check(&self, upstream: &Upstream) -> Result<(), String> {
        let uri: Uri = format!("http://{}{}", upstream.authority, self.config.path)
            .parse()
            .map_err(|e| format!("bad health check URI: {e}"))?;
        let mut request = Request::new(UpstreamBody::empty());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("runway-balancer"),
        );
        let timeout = self.config.timeout;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| crate::proxy::describe_error(&e))?;
            let status = response.status();
            // Reading the (small) body lets the connection go back to the pool.
            let _ = Limited::new(response.into_body(), MAX_HEALTH_BODY)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{} answered {status}", self.config.path))
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "no answer to {} within {}",
                self.config.path,
                display_duration(timeout)
            )),
        }
    }

    fn record(&self, upstream: &Upstream, outcome: Result<(), String>) {
        use std::sync::atomic::Ordering::Relaxed;
        let first = !upstream.checked.swap(true, Relaxed);
        match outcome {
            Ok(()) => {
                upstream.failures.store(0, Relaxed);
                let successes = upstream.successes.fetch_add(1, Relaxed).saturating_add(1);
                upstream.clear_expired_ejection();
                if !upstream.is_healthy() && (first || successes >= self.config.rise) {
                    upstream.set_healthy(true);
                    tracing::info!(
                        upstream = %upstream.name,
                        "front-end {} passed its health check; it is in the pool",
                        upstream.name
                    );
                }
            }
            Err(reason) => {
                upstream.successes.store(0, Relaxed);
                let failures = upstream.failures.fetch_add(1, Relaxed).saturating_add(1);
                if first {
                    tracing::warn!(
                        upstream = %upstream.name,
                        "front-end {} failed its first health check ({reason}); \
                         it gets traffic after {} passing checks",
                        upstream.name,
                        self.config.rise
                    );
                } else if upstream.is_healthy() && failures >= self.config.fall {
                    upstream.set_healthy(false);
                    tracing::warn!(
                        upstream = %upstream.name,
                        "front-end {} failed {failures} health checks in a row ({reason}); \
                         it is out of the pool",
                        upstream.name
                    );
                }
            }
        }
    }
}

pub(crate) fn display_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
