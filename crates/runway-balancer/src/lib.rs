//! The load balancer in front of a farm of Runway front-ends
//! (`runway balancer serve`): the environment's address.
//!
//! A [`Balancer`] accepts HTTP/1.1 app traffic and forwards each request to
//! one front-end, streaming bodies both ways over kept-alive connections.
//!
//! - `discovery` learns the front-ends: a fixed `--upstream` list, or the
//!   controller's `GET /_runway/api/v1/frontends` polled every interval.
//!   Front-ends that leave are drained, never cut.
//! - `health` checks each one actively (`/_runway/ready`); `proxy` ejects
//!   one passively when the front-end itself fails (a connection refused or
//!   closed before the request went out), never for one bad answer, and
//!   never more than `max_ejection_percent` of the pool.
//! - `pool` holds the lock-free snapshot a request picks from
//!   (least-outstanding or round-robin).
//! - `connect` keeps each worker's kept-alive connections to the front-ends.
//! - `proxy` forwards, retries idempotent requests on another front-end
//!   when no answer came back, and logs every request
//!   (target `runway_balancer::access`).
//! - `headers` rewrites headers (`X-Forwarded-*`, `Forwarded`, request id,
//!   hop-by-hop).
//! - `server` runs the worker threads (one single-threaded runtime each, like
//!   nginx's worker processes), accepts connections and shuts down
//!   gracefully.
//!
//! The crate speaks only HTTP and the `runway-api` wire types: it knows
//! nothing of apps, the runtime or the catalogs.

mod client;
mod config;
mod connect;
mod discovery;
mod error;
pub mod file;
mod headers;
mod health;
mod metrics;
mod pool;
mod proxy;
mod routes;
mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::{
    BalancerConfig, Discovery, HealthConfig, ListenerConfig, ListenerRole, Policy, ProxyConfig,
    RouteConfig, RouteTarget, defaults,
};
pub use error::{BalancerError, Result};
pub use pool::UpstreamStatus;

use discovery::{Controller, Members};
use health::Checker;
use pool::Pool;

/// A running balancer. Stop it with [`Balancer::shutdown`]; dropping it
/// stops it abruptly.
pub struct Balancer {
    addr: SocketAddr,
    listeners: Vec<(SocketAddr, ListenerRole)>,
    members: Arc<Members>,
    /// The upstreams of routes with static upstreams (reverse-proxy mode).
    route_members: Vec<Arc<Members>>,
    certificates: Option<Arc<tls::Certificates>>,
    shutdown_grace: std::time::Duration,
    stop: watch::Sender<bool>,
    force: watch::Sender<bool>,
    /// Closed once every worker thread and connection is gone.
    connections: mpsc::Receiver<()>,
    discovery: Option<JoinHandle<()>>,
}

impl Balancer {
    /// Validates `config`, does the first discovery (an unreachable controller
    /// or a refused token is an error here, not later), runs the first health
    /// check of every upstream, binds the listener and starts serving.
    pub async fn start(config: BalancerConfig) -> Result<Balancer> {
        config.validate()?;
        let platform = platform_pool(&config)?;
        let client = client::http_client(config.connect_timeout);
        let pool = Arc::new(Pool::new(config.policy, config.max_ejection_percent));
        let checker = Arc::new(Checker::new(client.clone(), config.health.clone()));
        let members = Arc::new(Members::new(pool.clone(), checker.clone(), config.workers));

        let (stop, stop_rx) = watch::channel(false);
        let (force, force_rx) = watch::channel(false);

        let (targets, controller, first_list) = match &config.discovery {
            Discovery::Static(urls) => (discovery::static_targets(urls), None, None),
            Discovery::Controller {
                url,
                token,
                interval,
            } => {
                let controller =
                    Controller::new(client.clone(), url, &config.standby_controllers, token)?;
                let (list, tag) = controller.fetch_watching(None).await?;
                check_zones(&config, &list)?;
                let targets = discovery::controller_targets(&list, &config.zone);
                if targets.is_empty() {
                    tracing::warn!(
                        "the controller at {} lists no front-end that takes traffic ({} listed); \
                         requests get 503 until one is ready",
                        config::display_url(url),
                        list.frontends.len()
                    );
                }
                (targets, Some((controller, *interval, tag)), Some(list))
            }
        };

        let certificates = match &config.proxy {
            Some(proxy) if !proxy.certificates.is_empty() => Some(Arc::new(
                tls::Certificates::load(&proxy.certificates).map_err(BalancerError::Certificate)?,
            )),
            _ => None,
        };
        let listen = match &config.proxy {
            Some(proxy) => proxy.listeners.clone(),
            None => vec![ListenerConfig {
                addr: config.listen,
                role: ListenerRole::Http,
            }],
        };
        let mut bound = Vec::with_capacity(listen.len());
        for wanted in &listen {
            let listener = bind(wanted.addr).await?;
            let addr = listener.local_addr().map_err(|e| BalancerError::Listen {
                addr: wanted.addr,
                reason: e.to_string(),
            })?;
            bound.push((listener, addr, wanted.role));
        }
        let addr = bound[0].1;
        let https_port = bound
            .iter()
            .find(|(_, _, role)| *role == ListenerRole::Https)
            .map(|(_, addr, _)| addr.port());

        // Routes: the discovered pool, or a pool of its own per route with
        // static upstreams.
        let mut route_members = Vec::new();
        // One pool per other zone a route names, filled by the same watch.
        let mut zone_members: Vec<(String, Arc<Pool>, Arc<Members>)> = Vec::new();
        let mut initial = members.apply(targets, true);
        let routes = match &config.proxy {
            None => vec![routes::Route {
                host: None,
                prefix: "/".into(),
                pool: pool.clone(),
            }],
            Some(proxy) => {
                let mut routes = Vec::with_capacity(proxy.routes.len());
                for route in &proxy.routes {
                    let pool = match &route.target {
                        RouteTarget::Discovered => pool.clone(),
                        RouteTarget::Zone { zone, .. } if *zone == config.zone => pool.clone(),
                        RouteTarget::Zone { zone, .. } => {
                            match zone_members.iter().find(|(z, _, _)| z == zone) {
                                Some((_, own, _)) => own.clone(),
                                None => {
                                    let own = Arc::new(Pool::new(
                                        config.policy,
                                        config.max_ejection_percent,
                                    ));
                                    let own_members = Arc::new(Members::new(
                                        own.clone(),
                                        checker.clone(),
                                        config.workers,
                                    ));
                                    if let Some(list) = &first_list {
                                        initial.extend(own_members.apply(
                                            discovery::controller_targets(list, zone),
                                            true,
                                        ));
                                    }
                                    zone_members.push((zone.clone(), own.clone(), own_members));
                                    own
                                }
                            }
                        }
                        RouteTarget::Static(urls) => {
                            let own =
                                Arc::new(Pool::new(config.policy, config.max_ejection_percent));
                            let own_members = Arc::new(Members::new(
                                own.clone(),
                                checker.clone(),
                                config.workers,
                            ));
                            initial
                                .extend(own_members.apply(discovery::static_targets(urls), true));
                            route_members.push(own_members);
                            own
                        }
                    };
                    routes.push(routes::Route {
                        host: route.host.clone(),
                        prefix: route.path_prefix.clone(),
                        pool,
                    });
                }
                routes
            }
        };

        // The first check of each initial upstream is awaited so that the
        // balancer serves as soon as `start` returns.
        futures::future::join_all(initial.iter().map(|u| checker.check_and_record(u))).await;

        // With discovery from controllers, API requests follow the active
        // controller (the one discovery last heard from), as front-ends do.
        let follow = platform
            .clone()
            .filter(|_| controller.is_some())
            .map(|pool| discovery::PlatformFollower::new(pool, config.workers));
        if let (Some(follow), Some((controller, _, _))) = (&follow, &controller) {
            follow.follow(controller);
        }
        let zones: Vec<(String, Arc<Members>)> =
            std::iter::once((config.zone.clone(), members.clone()))
                .chain(zone_members.iter().map(|(z, _, m)| (z.clone(), m.clone())))
                .collect();
        route_members.extend(zone_members.into_iter().map(|(_, _, m)| m));
        let discovery = controller.map(|(controller, interval, tag)| {
            discovery::spawn_controller_loop(
                controller,
                zones,
                follow,
                interval,
                tag,
                stop_rx.clone(),
            )
        });

        let (alive, connections) = mpsc::channel(1);
        let settings = server::WorkerSettings {
            routes: Arc::new(routes::RouteTable::new(routes)),
            platform,
            connect_timeout: config.connect_timeout,
            max_attempts: config.max_attempts,
            eject_for: config.eject_for,
            connections: config.connections,
            metrics: Arc::new(metrics::BalancerMetrics::new(
                std::iter::once(members.clone())
                    .chain(route_members.iter().cloned())
                    .collect(),
                config.metrics_token.clone(),
            )),
        };
        let server_config = certificates.as_ref().map(|c| c.server_config());
        let mut listeners = Vec::with_capacity(bound.len());
        let mut addrs = Vec::with_capacity(bound.len());
        for (listener, addr, role) in bound {
            let door = server::Door {
                tls: (role == ListenerRole::Https).then(|| {
                    tokio_rustls::TlsAcceptor::from(
                        server_config
                            .clone()
                            .expect("validated: https has certificates"),
                    )
                }),
                redirect_to: (role == ListenerRole::RedirectToHttps)
                    .then_some(https_port)
                    .flatten(),
            };
            let listener = listener.into_std().map_err(BalancerError::Workers)?;
            listeners.push((listener, Arc::new(door)));
            addrs.push((addr, role));
        }
        let workers = server::spawn_workers(
            listeners,
            config.workers,
            settings,
            stop_rx,
            force_rx,
            alive,
        );
        if let Err(error) = workers {
            // Threads already started stop when `stop` is dropped here.
            members.stop();
            route_members.iter().for_each(|m| m.stop());
            return Err(BalancerError::Workers(error));
        }

        let in_pool = members.statuses().iter().filter(|s| s.in_pool).count();
        tracing::info!(
            %addr,
            policy = %config.policy,
            workers = config.workers,
            "the balancer listens on {addr}; {in_pool} of {} front-ends are in the pool",
            members.len()
        );
        for (addr, role) in &addrs[1..] {
            tracing::info!(%addr, "the balancer also listens on {addr} ({})", role.as_str());
        }
        Ok(Balancer {
            addr,
            listeners: addrs,
            members,
            route_members,
            certificates,
            shutdown_grace: config.shutdown_grace,
            stop,
            force,
            connections,
            discovery,
        })
    }

    /// The address the balancer listens on (the first listener's, with the
    /// actual port when the configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every listener's address (with the actual port) and role, in the
    /// order of the configuration.
    pub fn listeners(&self) -> &[(SocketAddr, ListenerRole)] {
        &self.listeners
    }

    /// Every known upstream: those discovery lists, in its order, then those
    /// still draining; then those of routes with static upstreams.
    pub fn upstreams(&self) -> Vec<UpstreamStatus> {
        let mut all = self.members.statuses();
        for members in &self.route_members {
            all.extend(members.statuses());
        }
        all
    }

    /// Loads the certificate files again and serves them from the next TLS
    /// handshake on (see [`tls`]); on any error the certificates in force
    /// stay. `Ok(None)` when the balancer has no certificates.
    pub fn reload_certificates(&self) -> std::result::Result<Option<usize>, tls::CertificateError> {
        match &self.certificates {
            Some(certificates) => certificates.reload().map(Some),
            None => Ok(None),
        }
    }

    /// Stops accepting connections, lets in-flight requests finish for up to
    /// the shutdown grace, then cuts what is left and stops discovery and
    /// health checks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(self.shutdown_grace, self.connections.recv()).await;
        if drained.is_err() {
            tracing::warn!(
                "requests still in flight after the shutdown grace of {}; closing their connections",
                health::display_duration(self.shutdown_grace)
            );
            let _ = self.force.send(true);
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(5), self.connections.recv())
                    .await;
        }
        if let Some(discovery) = self.discovery.take() {
            let _ = discovery.await;
        }
        self.members.stop();
        self.route_members.iter().for_each(|m| m.stop());
        tracing::info!("the balancer stopped");
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = self.force.send(true);
        if let Some(discovery) = self.discovery.take() {
            discovery.abort();
        }
        self.members.stop();
        self.route_members.iter().for_each(|m| m.stop());
    }
}

/// Refuses a zone the controller does not list: `--zone`, or a route's.
fn check_zones(config: &BalancerConfig, list: &runway_api::v1::FrontendList) -> Result<()> {
    // A controller from before zones lists none: it has only `global`.
    let known: Vec<&str> = if list.zones.is_empty() {
        vec![runway_api::v1::GLOBAL_ZONE]
    } else {
        list.zones.iter().map(String::as_str).collect()
    };
    let mut wanted = vec![(config.zone.as_str(), "--zone".to_string())];
    if let Some(proxy) = &config.proxy {
        for route in &proxy.routes {
            if let RouteTarget::Zone { zone, at } = &route.target {
                wanted.push((zone.as_str(), at.clone()));
            }
        }
    }
    let routes_only = config.proxy.is_some();
    for (zone, at) in wanted {
        // In a reverse proxy the balancer's own zone matters only if a route uses it.
        if routes_only && at == "--zone" {
            continue;
        }
        if !known.contains(&zone) {
            return Err(BalancerError::UnknownZone {
                at,
                zone: zone.to_string(),
                known: known.join(", "),
            });
        }
    }
    Ok(())
}

/// A pool of one, always available: the controller behind
/// [`BalancerConfig::platform`].
fn platform_pool(config: &BalancerConfig) -> Result<Option<Arc<Pool>>> {
    let Some(url) = &config.platform else {
        return Ok(None);
    };
    let upstream = pool::Upstream::new("controller".into(), url.clone(), config.workers)
        .ok_or_else(|| BalancerError::Invalid {
            setting: "platform",
            value: url.to_string(),
            fix: "give the controller's http://host:port",
        })?;
    upstream.set_healthy(true);
    let pool = Pool::new(Policy::RoundRobin, config.max_ejection_percent);
    pool.publish(vec![Arc::new(upstream)]);
    Ok(Some(Arc::new(pool)))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => "address in use".to_string(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_string()
            }
            std::io::ErrorKind::AddrNotAvailable => "no such address on this machine".to_string(),
            _ => e.to_string(),
        };
        BalancerError::Listen { addr, reason }
    })
}
