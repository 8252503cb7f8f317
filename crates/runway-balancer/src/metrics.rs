//! The balancer's series at `/_runway/metrics` (see `runway_net::metrics`),
//! answered by the balancer itself (never forwarded): requests per upstream
//! and status class, and each upstream's state (healthy, in the pool,
//! outstanding requests). Upstream names come from discovery (front-end
//! names) or the configuration, so the label set is bounded.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use runway_net::metrics::{MetricsEndpoint, status_class};

use crate::discovery::Members;

type Labels = Vec<(&'static str, String)>;

/// What the balancer counts, and its scrape endpoint.
pub(crate) struct BalancerMetrics {
    pub(crate) endpoint: MetricsEndpoint,
    requests: Family<Labels, Counter>,
}

/// Each upstream's state, read at each scrape.
struct UpstreamCollector(Vec<Arc<Members>>);

impl std::fmt::Debug for UpstreamCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamCollector")
    }
}

impl Collector for UpstreamCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let healthy = Family::<Labels, Gauge>::default();
        let in_pool = Family::<Labels, Gauge>::default();
        let outstanding = Family::<Labels, Gauge>::default();
        for members in &self.0 {
            for s in members.statuses() {
                let labels = vec![("upstream", s.name.clone())];
                healthy.get_or_create(&labels).set(i64::from(s.healthy));
                in_pool.get_or_create(&labels).set(i64::from(s.in_pool));
                outstanding.get_or_create(&labels).set(s.outstanding as i64);
            }
        }
        for (name, help, family) in [
            (
                "runway_balancer_upstream_healthy",
                "1 when the upstream passes its active health checks",
                &healthy,
            ),
            (
                "runway_balancer_upstream_in_pool",
                "1 when new requests may be sent to the upstream (healthy, not ejected, not draining)",
                &in_pool,
            ),
            (
                "runway_balancer_upstream_outstanding",
                "Requests sent to the upstream whose answer is not fully sent back",
                &outstanding,
            ),
        ] {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}

impl BalancerMetrics {
    pub(crate) fn new(members: Vec<Arc<Members>>, token: Option<String>) -> BalancerMetrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "runway_balancer_requests",
            "Requests the balancer answered, per upstream (`-` when none answered) and status class",
            requests.clone(),
        );
        registry.register_collector(Box::new(UpstreamCollector(members)));
        BalancerMetrics {
            endpoint: MetricsEndpoint::new(vec![Arc::new(registry)], token),
            requests,
        }
    }

    pub(crate) fn count(&self, upstream: Option<&str>, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("upstream", upstream.unwrap_or("-").to_string()),
                ("status", status_class(status).to_string()),
            ])
            .inc();
    }
}
