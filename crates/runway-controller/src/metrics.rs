//! The controller's series at `/_runway/metrics` (see
//! `runway_net::metrics`): deployments by outcome, the log writer of its
//! catalogs. Labels are bounded (an outcome).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use runway_server::metrics::FnCollector;
use runway_store::LogSink;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    outcome: &'static str,
}

pub(crate) struct ControllerMetrics {
    pub(crate) registry: Arc<Registry>,
    deployments: Family<OutcomeLabel, Counter>,
}

impl ControllerMetrics {
    pub(crate) fn new(environment: &str, log: LogSink) -> ControllerMetrics {
        let mut registry = Registry::with_labels(
            [(
                std::borrow::Cow::Borrowed("environment"),
                std::borrow::Cow::Owned(environment.to_string()),
            )]
            .into_iter(),
        );
        let deployments = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "runway_deployments",
            "Deployments this controller ran to their end, by outcome (committed or failed)",
            deployments.clone(),
        );
        let (depth, dropped) = (log.clone(), log);
        registry.register_collector(Box::new(
            FnCollector::new()
                .gauge(
                    "runway_controller_log_queue_depth",
                    "Log rows waiting for the controller's log writer",
                    move || depth.queue_depth() as i64,
                )
                .counter(
                    "runway_controller_log_dropped_rows",
                    "Log rows the controller's process never stored",
                    move || dropped.dropped() as i64,
                ),
        ));
        ControllerMetrics {
            registry: Arc::new(registry),
            deployments,
        }
    }

    /// Counts a deployment's end.
    pub(crate) fn deployment(&self, committed: bool) {
        self.deployments
            .get_or_create(&OutcomeLabel {
                outcome: if committed { "committed" } else { "failed" },
            })
            .inc();
    }
}
