//! `/metrics` of every Runway server role, in the Prometheus text format
//! (version 0.0.4), with the `prometheus-client` crate.
//!
//! Each role keeps its own [`Registry`] of series (counters, gauges,
//! histograms); a [`MetricsEndpoint`] answers a scrape with the text of one
//! or more registries (`runway up --single` serves the controller's and the
//! front-end's on one port) plus the process basics ([`ProcessCollector`]).
//! With a token (`--metrics-token`, or the environment variable
//! `RUNWAY_METRICS_TOKEN`) a scrape must send `Authorization: Bearer
//! <token>` (compared in constant time); without one it answers 401 naming
//! the fix. Label sets are chosen by the roles so they cannot explode: app
//! names (bounded by the catalog), status classes, front-end names; never a
//! path or a request id.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

pub use prometheus_client;

/// The `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The environment variable `--metrics-token` reads by default.
pub const TOKEN_ENV: &str = "RUNWAY_METRICS_TOKEN";

/// Where the environment's roles (controller, front-end, balancer) serve
/// their metrics: under `/_runway/`, since every other path of their address
/// may be an app's (an app may be called `metrics`). The console, which
/// serves no apps, answers at [`CONSOLE_PATH`].
pub const ENVIRONMENT_PATH: &str = "/_runway/metrics";

/// Where the console serves its metrics.
pub const CONSOLE_PATH: &str = "/metrics";

/// The status class label of an HTTP status: `1xx` … `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Latency buckets (seconds) of every request-duration histogram: 1 ms to
/// 30 s, the same edges as the dashboard's chart rollups.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A scrape target: the registries of the roles a server hosts.
#[derive(Clone)]
pub struct MetricsEndpoint {
    registries: Arc<Vec<Arc<Registry>>>,
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("registries", &self.registries.len())
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl MetricsEndpoint {
    /// Serves `registries` (the process basics are added once) under
    /// `token`, if any. An empty token means none.
    pub fn new(registries: Vec<Arc<Registry>>, token: Option<String>) -> MetricsEndpoint {
        let mut process = Registry::default();
        process.register_collector(Box::new(ProcessCollector));
        let mut all = registries;
        all.push(Arc::new(process));
        MetricsEndpoint {
            registries: Arc::new(all),
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }

    /// Whether a scrape is protected by a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The text of every registry.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        for registry in self.registries.iter() {
            // Writing to a String cannot fail; a collector that fails leaves
            // its partial text, which the next scrape replaces.
            if let Err(e) =
                prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
            {
                tracing::warn!("a metrics collector failed: {e}");
            }
        }
        text
    }

    /// The answer to a scrape: 401 without the right token, else the text.
    pub fn respond(&self, headers: &HeaderMap) -> Response<String> {
        if let Some(token) = &self.token {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            let ok = sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(token.as_bytes())));
            if !ok {
                let why = if sent.is_some() {
                    "the bearer token is not this server's metrics token"
                } else {
                    "no bearer token"
                };
                let mut response = Response::new(format!(
                    "401 unauthorized: {why}; scrape with `Authorization: Bearer <token>` using \
                     the server's --metrics-token (or {TOKEN_ENV})\n"
                ));
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"metrics\""),
                );
                return response;
            }
        }
        let mut response = Response::new(self.encode());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A collector reading a value when scraped (queue depths, pool sizes):
/// one gauge (or counter) per closure, no labels.
pub struct FnCollector {
    items: Vec<FnItem>,
}

struct FnItem {
    name: &'static str,
    help: &'static str,
    counter: bool,
    read: Box<dyn Fn() -> i64 + Send + Sync>,
}

impl std::fmt::Debug for FnCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|i| i.name))
            .finish()
    }
}

impl FnCollector {
    pub fn new() -> FnCollector {
        FnCollector { items: Vec::new() }
    }

    /// A gauge `name` read by `read` at each scrape.
    pub fn gauge(
        mut self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> FnCollector {
        self.items.push(FnItem {
            name,
            help,
            counter: false,
            read: Box::new(read),
        });
        self
    }

    /// A counter `name` (without `_total`, which is added) read by `read`.
    pub fn counter(
        mut self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> FnCollector {
        self.items.push(FnItem {
            name,
            help,
            counter: true,
            read: Box::new(read),
        });
        self
    }
}

impl Default for FnCollector {
    fn default() -> Self {
        FnCollector::new()
    }
}

impl Collector for FnCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for item in &self.items {
            let value = (item.read)();
            if item.counter {
                let metric = ConstCounter::new(u64::try_from(value).unwrap_or(0));
                let e =
                    encoder.encode_descriptor(item.name, item.help, None, metric.metric_type())?;
                metric.encode(e)?;
            } else {
                let metric = ConstGauge::new(value);
                let e =
                    encoder.encode_descriptor(item.name, item.help, None, metric.metric_type())?;
                metric.encode(e)?;
            }
        }
        Ok(())
    }
}

/// The process basics, read from `/proc` at each scrape (Linux; elsewhere
/// nothing): `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_threads`,
/// `process_start_time_seconds`.
#[derive(Debug)]
pub struct ProcessCollector;

/// `/proc` reports CPU time in clock ticks of `USER_HZ`, 100 on Linux.
const USER_HZ: f64 = 100.0;

struct ProcessStats {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_bytes: i64,
    resident_bytes: i64,
    threads: i64,
    open_fds: i64,
}

fn read_process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let cpu_seconds = (field(14)? + field(15)?) / USER_HZ;
    let threads = field(20)? as i64;
    let start_ticks = field(22)?;
    let virtual_bytes = field(23)? as i64;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let resident_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .unwrap_or(0);
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    Some(ProcessStats {
        cpu_seconds,
        start_time_seconds: boot_time + start_ticks / USER_HZ,
        virtual_bytes,
        resident_bytes: resident_kib * 1024,
        threads,
        open_fds,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read_process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, f64); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds as f64,
            ),
            ("process_threads", "Number of OS threads", s.threads as f64),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                s.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    fn endpoint(token: Option<&str>) -> MetricsEndpoint {
        let mut registry = Registry::default();
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        registry.register("runway_test_requests", "Requests", requests.clone());
        requests
            .get_or_create(&vec![("app".into(), "notes".into())])
            .inc();
        MetricsEndpoint::new(vec![Arc::new(registry)], token.map(str::to_string))
    }

    #[test]
    fn text_has_series_and_process_basics() {
        let r = endpoint(None).respond(&HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        let body = r.body();
        assert!(
            body.contains("runway_test_requests_total{app=\"notes\"} 1"),
            "{body}"
        );
        assert!(body.contains("process_resident_memory_bytes"), "{body}");
        assert!(body.contains("process_cpu_seconds_total"), "{body}");
    }

    #[test]
    fn a_token_is_required_when_set() {
        let e = endpoint(Some("s3cret"));
        assert_eq!(
            e.respond(&HeaderMap::new()).status(),
            StatusCode::UNAUTHORIZED
        );
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert_eq!(e.respond(&h).status(), StatusCode::UNAUTHORIZED);
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(e.respond(&h).status(), StatusCode::OK);
        assert!(!endpoint(Some("")).has_token());
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(499), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
