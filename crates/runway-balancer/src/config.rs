//! What a balancer is told at start, and the checks that turn a configuration
//! into one the rest of the crate can trust.
//!
//! Everything here is validated before a socket is bound or the controller is
//! called, so a wrong flag is one clear error naming the flag and the fix.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderValue;
use url::Url;

use crate::error::{BalancerError, Result};

/// How a balancer runs. Build one with [`BalancerConfig::new`] (or
/// [`defaults`]) and change the fields that differ from the defaults.
#[derive(Debug, Clone)]
pub struct BalancerConfig {
    /// Where app traffic arrives (the environment's address).
    pub listen: SocketAddr,
    /// Where the list of front-ends comes from.
    pub discovery: Discovery,
    /// How an upstream is chosen for a request. Default: least outstanding.
    pub policy: Policy,
    /// Active health checks.
    pub health: HealthConfig,
    /// Time allowed to open a TCP connection to a front-end. Default 1 s.
    pub connect_timeout: Duration,
    /// How long a front-end stays out of the pool after a failure of its own
    /// (passive ejection: a connection refused, timed out, or closed before
    /// the request was written). Default 5 s; zero disables passive ejection.
    pub eject_for: Duration,
    /// Most of the pool that passive ejection may keep out at once, in
    /// percent (0–100; like Envoy's outlier detection). Default 50: passive
    /// signals alone never take more than half the front-ends out. Active
    /// health checks are not capped.
    pub max_ejection_percent: u32,
    /// Total tries for a retryable request, the first one included. Default 3.
    pub max_attempts: u32,
    /// How long in-flight requests may run after [`crate::Balancer::shutdown`]
    /// stopped accepting connections. Default 30 s.
    pub shutdown_grace: Duration,
    /// Threads that accept and proxy, each with its own single-threaded
    /// runtime and upstream connection pool. Default: one per CPU.
    pub workers: usize,
    /// Where requests for the platform's API and dashboard (`/_runway/…`
    /// but the front-ends' health and readiness: [`is_platform_path`]) go instead of
    /// a front-end: the controller, so the environment answers at one
    /// address. Not health-checked; never retried elsewhere. Default: none
    /// (such paths go to the front-ends like any other).
    pub platform: Option<Url>,
    /// The bearer token `/_runway/metrics` requires (`--metrics-token`);
    /// `None`: open.
    pub metrics_token: Option<String>,
    /// Client connections: header-read and keep-alive timeouts, bound on
    /// connections open at once, send timeout (`--header-read-timeout-ms`,
    /// `--keep-alive-timeout-ms`, `--max-connections`, `--send-timeout-ms`).
    /// Default 10 s, 60 s, 10 000, 60 s.
    pub connections: runway_net::ConnectionSettings,
    /// With [`Discovery::Controller`]: the environment's other (standby)
    /// controllers. Discovery asks the one that answered last, and on a
    /// connection error or a 5xx the next one; an answer naming the active
    /// controller (`x-runway-active-controller`) is followed. Default: none.
    pub standby_controllers: Vec<Url>,
    /// Reverse-proxy mode (`runway balancer serve --config FILE`): several
    /// listeners (HTTP, HTTPS, redirect), certificates and routes. When set,
    /// its listeners replace `listen`. Default: none (one plain HTTP
    /// listener, every request to the discovered front-ends).
    pub proxy: Option<ProxyConfig>,
    /// The deployment zone whose front-ends the controller discovery takes
    /// (`--zone`, default `global`); routes of other zones get pools of their own.
    pub zone: String,
}

/// Listeners, certificates and routes of a reverse proxy.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// At least one.
    pub listeners: Vec<ListenerConfig>,
    /// Needed when a listener is HTTPS (the first one is the default for
    /// clients without SNI).
    pub certificates: Vec<crate::tls::CertificateFiles>,
    /// At least one; at most one per (host, path prefix). A request takes
    /// the route with its host (else a route without host), the longest
    /// matching prefix.
    pub routes: Vec<RouteConfig>,
}

/// One listening address and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    pub role: ListenerRole,
}

/// What a listener does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Plain HTTP/1.1, proxied.
    Http,
    /// TLS (HTTP/2 or HTTP/1.1 by ALPN), proxied.
    Https,
    /// Plain HTTP answered `308` to the same host and path on the HTTPS
    /// listener.
    RedirectToHttps,
}

impl ListenerRole {
    /// The spelling of `protocol` in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerRole::Http => "http",
            ListenerRole::Https => "https",
            ListenerRole::RedirectToHttps => "redirect-to-https",
        }
    }
}

/// Requests for `host` (any host when `None`) whose path starts with
/// `path_prefix` (at a segment boundary: `/app` matches `/app` and `/app/x`,
/// not `/apple`) go to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Lower-case, without port.
    pub host: Option<String>,
    /// Starts with `/`; no trailing `/` except for the root `/`.
    pub path_prefix: String,
    pub target: RouteTarget,
}

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// The front-ends [`BalancerConfig::discovery`] finds (a controller's
    /// front-ends of zone [`BalancerConfig::zone`]).
    Discovered,
    /// The controller's front-ends of deployment zone `zone`; `at` says where
    /// the route was configured (`FILE:LINE`), for the error when the
    /// controller has no such zone.
    Zone { zone: String, at: String },
    /// A fixed list of upstreams of this route only, health-checked.
    Static(Vec<Url>),
}

/// Whether `path` is the controller's when [`BalancerConfig::platform`] is
/// set: its API and the environment's dashboard, i.e. everything under
/// `/_runway/` except the front-ends' own `/_runway/health` and
/// `/_runway/ready` (and the balancer's `/_runway/metrics`, answered
/// before routing).
pub fn is_platform_path(path: &str) -> bool {
    path == "/_runway"
        || (path.starts_with("/_runway/")
            && !matches!(
                path,
                "/_runway/health" | "/_runway/ready" | runway_net::metrics::ENVIRONMENT_PATH
            ))
}

/// Where the balancer learns which front-ends exist.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Fixed upstream list (`--upstream http://127.0.0.1:9101 --upstream ...`).
    /// Names are the URLs' `host:port`.
    Static(Vec<Url>),
    /// Poll the controller's `GET {url}/_runway/api/v1/frontends` with
    /// `Authorization: Bearer {token}` every `interval`.
    Controller {
        url: Url,
        token: String,
        interval: Duration,
    },
}

/// How an upstream is chosen among the ones in the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Policy {
    /// The upstream with the fewest in-flight requests; ties are broken by a
    /// rotating start, so an idle farm is served round-robin.
    #[default]
    LeastOutstanding,
    /// Each request goes to the next upstream in the pool.
    RoundRobin,
}

impl Policy {
    /// The spelling used by `--policy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::LeastOutstanding => "least-outstanding",
            Policy::RoundRobin => "round-robin",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = BalancerError;

    fn from_str(s: &str) -> Result<Policy> {
        match s {
            "least-outstanding" => Ok(Policy::LeastOutstanding),
            "round-robin" => Ok(Policy::RoundRobin),
            other => Err(BalancerError::Invalid {
                setting: "--policy",
                value: other.to_string(),
                fix: "use least-outstanding or round-robin",
            }),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Active health checks: `GET {upstream}{path}` every `interval`.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Default `/_runway/ready`: a front-end that has not loaded the committed
    /// routing table answers 503 there and gets no traffic.
    pub path: String,
    /// Default 1 s.
    pub interval: Duration,
    /// Default 1 s.
    pub timeout: Duration,
    /// Consecutive 2xx answers that bring an unhealthy upstream back. Default 2.
    pub rise: u32,
    /// Consecutive failures that take a healthy upstream out. Default 2.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/_runway/ready".to_string(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 2,
        }
    }
}

/// A configuration with every default of the brief: least-outstanding policy,
/// health checks of `/_runway/ready` every second (rise 2, fall 2), 1 s
/// connect timeout, 5 s passive ejection of at most 50% of the pool,
/// 3 attempts, 30 s shutdown grace, one worker thread per CPU.
pub fn defaults(listen: SocketAddr, discovery: Discovery) -> BalancerConfig {
    BalancerConfig {
        listen,
        discovery,
        policy: Policy::default(),
        health: HealthConfig::default(),
        connect_timeout: Duration::from_secs(1),
        eject_for: Duration::from_secs(5),
        max_ejection_percent: 50,
        max_attempts: 3,
        shutdown_grace: Duration::from_secs(30),
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        platform: None,
        metrics_token: None,
        connections: runway_net::ConnectionSettings::default(),
        standby_controllers: Vec::new(),
        proxy: None,
        zone: runway_api::v1::GLOBAL_ZONE.to_string(),
    }
}

impl BalancerConfig {
    /// Same as [`defaults`].
    pub fn new(listen: SocketAddr, discovery: Discovery) -> BalancerConfig {
        defaults(listen, discovery)
    }

    /// Every check that does not need the network.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |setting: &'static str, value: String, fix: &'static str| {
            Err(BalancerError::Invalid {
                setting,
                value,
                fix,
            })
        };
        if self.workers == 0 {
            return invalid("workers", "0".into(), "it must be at least 1");
        }
        if let Err(message) = self.connections.validate() {
            return Err(BalancerError::Connections(message));
        }
        if self.max_ejection_percent > 100 {
            return invalid(
                "--max-ejection-percent",
                self.max_ejection_percent.to_string(),
                "it is a percentage of the front-ends: give 0 to 100",
            );
        }
        if self.max_attempts == 0 {
            return invalid("max attempts", "0".into(), "it must be at least 1");
        }
        if self.connect_timeout.is_zero() {
            return invalid(
                "connect timeout",
                "0 ms".into(),
                "it must be more than zero",
            );
        }
        let health = &self.health;
        if !health.path.starts_with('/') || health.path.parse::<http::Uri>().is_err() {
            return invalid(
                "health check path",
                health.path.clone(),
                "it must be a URL path starting with /, such as /_runway/ready",
            );
        }
        if health.interval.is_zero() {
            return invalid("--health-interval-ms", "0".into(), "it must be at least 1");
        }
        if health.timeout.is_zero() {
            return invalid(
                "health check timeout",
                "0 ms".into(),
                "it must be more than zero",
            );
        }
        if health.rise == 0 {
            return invalid("--health-rise", "0".into(), "it must be at least 1");
        }
        if health.fall == 0 {
            return invalid("--health-fall", "0".into(), "it must be at least 1");
        }
        // Without a route to the discovered front-ends, discovery may be an
        // empty static list (a proxy of static upstreams only).
        let discovered = self.proxy.as_ref().is_none_or(|proxy| {
            proxy
                .routes
                .iter()
                .any(|r| matches!(r.target, RouteTarget::Discovered | RouteTarget::Zone { .. }))
        });
        if let Some(proxy) = &self.proxy {
            validate_proxy(proxy)?;
        }
        match &self.discovery {
            Discovery::Static(urls) if urls.is_empty() && !discovered => {}
            Discovery::Static(urls) => {
                if urls.is_empty() {
                    return Err(BalancerError::NoUpstreams);
                }
                let mut names = Vec::with_capacity(urls.len());
                for url in urls {
                    let name = upstream_name(url).map_err(|reason| {
                        // Never repeat a password in a message.
                        let mut shown = url.clone();
                        let _ = shown.set_password(None);
                        BalancerError::BadUpstream {
                            url: shown.to_string(),
                            reason,
                        }
                    })?;
                    if names.contains(&name) {
                        return Err(BalancerError::DuplicateUpstream { name });
                    }
                    names.push(name);
                }
            }
            Discovery::Controller {
                url,
                token,
                interval,
            } => {
                check_controller_url(url)?;
                for standby in &self.standby_controllers {
                    check_controller_url(standby)?;
                }
                if token.is_empty() {
                    return Err(BalancerError::NoToken {
                        controller: display_url(url),
                    });
                }
                if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                    return Err(BalancerError::BadToken);
                }
                if interval.is_zero() {
                    return invalid(
                        "discovery interval",
                        "0 ms".into(),
                        "it must be more than zero",
                    );
                }
            }
        }
        Ok(())
    }
}

/// The checks of [`ProxyConfig`] that the configuration file's loader makes
/// too, with line numbers (here for configurations built in code).
fn validate_proxy(proxy: &ProxyConfig) -> Result<()> {
    let invalid = |setting: &'static str, value: String, fix: &'static str| {
        Err(BalancerError::Invalid {
            setting,
            value,
            fix,
        })
    };
    if proxy.listeners.is_empty() {
        return invalid("listeners", "none".into(), "give at least one [[listener]]");
    }
    let https = proxy
        .listeners
        .iter()
        .any(|l| l.role == ListenerRole::Https);
    if https && proxy.certificates.is_empty() {
        return invalid(
            "certificates",
            "none".into(),
            "an https listener needs at least one [[certificate]]",
        );
    }
    if !https
        && proxy
            .listeners
            .iter()
            .any(|l| l.role == ListenerRole::RedirectToHttps)
    {
        return invalid(
            "listeners",
            "redirect-to-https".into(),
            "a redirect needs an https listener to redirect to",
        );
    }
    if proxy.routes.is_empty() {
        return invalid("routes", "none".into(), "give at least one [[route]]");
    }
    for (index, route) in proxy.routes.iter().enumerate() {
        if !route.path_prefix.starts_with('/') {
            return invalid(
                "route path",
                route.path_prefix.clone(),
                "a path prefix starts with /",
            );
        }
        if proxy.routes[..index]
            .iter()
            .any(|r| r.host == route.host && r.path_prefix == route.path_prefix)
        {
            return invalid(
                "routes",
                format!(
                    "{}{}",
                    route.host.as_deref().unwrap_or("(any host)"),
                    route.path_prefix
                ),
                "two routes have the same host and path prefix; keep one",
            );
        }
        if let RouteTarget::Static(urls) = &route.target {
            if urls.is_empty() {
                return invalid(
                    "route upstreams",
                    "[]".into(),
                    "give at least one http://HOST:PORT",
                );
            }
            for url in urls {
                upstream_name(url).map_err(|reason| BalancerError::BadUpstream {
                    url: url.to_string(),
                    reason,
                })?;
            }
        }
    }
    Ok(())
}

/// The name of a statically configured upstream (`host:port`), or why its URL
/// cannot be an upstream. Front-end addresses from the controller go through
/// the same check.
pub(crate) fn upstream_name(url: &Url) -> std::result::Result<String, String> {
    if url.scheme() != "http" {
        return Err(format!(
            "is not http:// (the balancer speaks plain HTTP/1.1 to front-ends; {} is not supported)",
            url.scheme()
        ));
    }
    let Some(host) = url.host_str() else {
        return Err("has no host".into());
    };
    if url.path() != "/" && !url.path().is_empty() {
        return Err(format!(
            "has a path ({}); requests are forwarded with their path unchanged, so give only scheme, host and port",
            url.path()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("has a query or fragment; give only scheme, host and port".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "carries credentials (user:password@); remove them: give only scheme, host and port"
                .into(),
        );
    }
    let port = url.port_or_known_default().unwrap_or(80);
    Ok(format!("{host}:{port}"))
}

fn check_controller_url(url: &Url) -> Result<()> {
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(BalancerError::BadController {
            url: display_url(&shown),
            reason: "must not carry credentials (user:password@); remove them and pass an API \
                     token with --token"
                .to_string(),
        });
    }
    let reason = match url.scheme() {
        "http" if url.host_str().is_some() => return Ok(()),
        "http" => "has no host".to_string(),
        "https" => "is https://, which the balancer cannot speak yet (it has no TLS client); \
                    reach the controller over http:// on a private network"
            .to_string(),
        other => format!("is not http:// ({other})"),
    };
    Err(BalancerError::BadController {
        url: url.to_string(),
        reason,
    })
}

/// A URL as a person typed it: without the trailing `/` that `Url` adds.
pub(crate) fn display_url(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_string()
}
