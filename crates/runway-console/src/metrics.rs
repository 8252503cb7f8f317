//! The console's series at `/metrics` (see `runway_net::metrics`): its
//! requests by status class and their latency, besides the process basics.
//! No label names an environment, a user or a path.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use runway_server::metrics::{LATENCY_BUCKETS, status_class};

type Labels = Vec<(&'static str, &'static str)>;

#[derive(Clone)]
struct Counters {
    requests: Family<Labels, Counter>,
    duration: Histogram,
}

async fn count(State(counters): State<Counters>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    counters
        .requests
        .get_or_create(&vec![("status", status_class(response.status().as_u16()))])
        .inc();
    counters.duration.observe(started.elapsed().as_secs_f64());
    response
}

/// `router` with its requests counted, and the registry holding the counts.
pub(crate) fn instrument(router: Router) -> (Router, Arc<Registry>) {
    let mut registry = Registry::default();
    let counters = Counters {
        requests: Family::default(),
        duration: Histogram::new(LATENCY_BUCKETS),
    };
    registry.register(
        "runway_console_http_requests",
        "Requests the console answered, by status class",
        counters.requests.clone(),
    );
    registry.register(
        "runway_console_http_request_duration_seconds",
        "Time the console took to answer a request (its head)",
        counters.duration.clone(),
    );
    let router = router.layer(axum::middleware::from_fn_with_state(counters, count));
    (router, Arc::new(registry))
}
