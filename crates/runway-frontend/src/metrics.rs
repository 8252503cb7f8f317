//! The front-end's series at `/_runway/metrics` (see `runway_net::metrics`).
//!
//! Labels are bounded: `app` is only ever the name of an app in the routing
//! table (a request for an unknown app counts under `app=""`), the status is
//! a class (`2xx`…), never a path or a request id.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use runway_runtime::Runtime;
use runway_server::metrics::{FnCollector, LATENCY_BUCKETS, status_class};
use runway_store::{LogSink, NewLogEntry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    app: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    outcome: &'static str,
}

/// What a front-end counts.
pub(crate) struct FrontendMetrics {
    pub(crate) registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<AppLabel, Histogram>,
    pub(crate) in_flight: Gauge,
    pub(crate) catchups: Family<OutcomeLabel, Counter>,
    pub(crate) stages: Family<OutcomeLabel, Counter>,
}

impl std::fmt::Debug for FrontendMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrontendMetrics")
    }
}

/// Instance memory and slots, read from the runtime at each scrape.
struct RuntimeCollector(Runtime);

impl std::fmt::Debug for RuntimeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeCollector")
    }
}

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let usage = self.0.usage();
        let gauges = [
            (
                "runway_instance_memory_reserved_bytes",
                "Memory reserved by the caps of the instances running now",
                usage.memory_reserved_bytes as i64,
            ),
            (
                "runway_instance_memory_budget_bytes",
                "The front-end's memory budget for instances (--memory-budget-mib)",
                usage.memory_budget_bytes as i64,
            ),
            (
                "runway_instances_running",
                "Instance slots in use",
                usage.instances as i64,
            ),
            (
                "runway_instances_max",
                "Instance slots (--max-instances)",
                usage.max_instances as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let per_app = Family::<AppLabel, Gauge>::default();
        for app in &usage.apps {
            per_app
                .get_or_create(&AppLabel {
                    app: app.app.clone(),
                })
                .set(app.memory_reserved_bytes as i64);
        }
        per_app.encode(encoder.encode_descriptor(
            "runway_app_instance_memory_reserved_bytes",
            "Memory reserved by the caps of an app's instances running now",
            None,
            per_app.metric_type(),
        )?)?;
        Ok(())
    }
}

impl FrontendMetrics {
    pub(crate) fn new(frontend: &str, runtime: Runtime, log: LogSink) -> FrontendMetrics {
        let mut registry = Registry::with_labels(
            [(
                std::borrow::Cow::Borrowed("frontend"),
                std::borrow::Cow::Owned(frontend.to_string()),
            )]
            .into_iter(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "runway_http_requests",
            "Requests served by this front-end, per app and status class",
            requests.clone(),
        );
        let duration = Family::<AppLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "runway_http_request_duration_seconds",
            "Time from a request's arrival to its response's last byte, per app",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "runway_http_requests_in_flight",
            "Requests being served now",
            in_flight.clone(),
        );
        let catchups = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "runway_frontend_catchups",
            "Catch-ups with the committed routing table, by outcome",
            catchups.clone(),
        );
        let stages = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "runway_frontend_stages",
            "Routing tables staged for a deployment, by outcome",
            stages.clone(),
        );
        registry.register_collector(Box::new(RuntimeCollector(runtime)));
        let (depth, dropped) = (log.clone(), log);
        registry.register_collector(Box::new(
            FnCollector::new()
                .gauge(
                    "runway_log_queue_depth",
                    "Log rows waiting for the log writer",
                    move || depth.queue_depth() as i64,
                )
                .counter(
                    "runway_log_dropped_rows",
                    "Log rows this process never stored (queue full, rate limit, refused, database unavailable)",
                    move || dropped.dropped() as i64,
                ),
        ));
        FrontendMetrics {
            registry: Arc::new(registry),
            requests,
            duration,
            in_flight,
            catchups,
            stages,
        }
    }

    /// Counts a finished request from its log row.
    pub(crate) fn observe(&self, entry: &NewLogEntry) {
        let app = entry.app.clone().unwrap_or_default();
        let status = entry.status.unwrap_or(0);
        self.requests
            .get_or_create(&RequestLabels {
                app: app.clone(),
                status: status_class(u16::try_from(status).unwrap_or(500)),
            })
            .inc();
        if let Some(us) = entry.duration_us {
            self.duration
                .get_or_create(&AppLabel { app })
                .observe(us as f64 / 1e6);
        }
    }

    pub(crate) fn outcome(ok: bool) -> OutcomeLabel {
        OutcomeLabel {
            outcome: if ok { "ok" } else { "failed" },
        }
    }
}

/// One request in flight, until dropped.
pub(crate) struct InFlight(Gauge);

impl InFlight {
    pub(crate) fn start(gauge: &Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
