//! The pool: which upstreams may take a new request, and the choice among them.
//!
//! # Snapshot
//!
//! The upstreams that discovery currently lists live in an immutable
//! `Vec<Arc<Upstream>>` behind an [`ArcSwap`]. A request loads the snapshot
//! (no lock, no allocation), walks it once and picks; discovery publishes a
//! new vector only when the membership changes. Everything that changes per
//! request or per health check (in-flight count, health, ejection deadline)
//! is an atomic on the [`Upstream`] itself, so a pick never waits on a lock
//! and a health flip is visible to the very next request.
//!
//! An upstream is *available* when it is healthy (see [`crate::health`]) and
//! not passively ejected. Draining upstreams are not in the snapshot at all.
//!
//! # Ejection cap
//!
//! Passive ejection goes through [`Pool::eject`], which never lets the
//! ejected upstreams exceed `max_ejection_percent` of the snapshot (like
//! Envoy's outlier detection): a signal that hits every front-end at once
//! cannot empty the pool on its own. A pool of one is never passively
//! ejected below 100%. Active health checks are not capped.
//!
//! # Choice
//!
//! Every pick advances one shared counter that gives the index to start the
//! walk from. Round-robin takes the first available upstream from there;
//! least-outstanding takes the available upstream with the fewest in-flight
//! requests, and because the walk starts at a rotating index, ties (the
//! common case on an idle farm) are broken round-robin too.
//!
//! A pick returns an [`InFlight`] guard that counts the request as
//! outstanding on its upstream until the guard is dropped, which the proxy
//! does only after the response body was sent to the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use http::uri::Authority;
use url::Url;

use crate::config::Policy;
use crate::connect::IdleConnections;

/// A front-end the balancer may send requests to.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub name: String,
    pub url: Url,
    /// `host:port`: where to connect, and the `Host` sent when the client
    /// sent none.
    pub authority: Authority,
    /// Value of the `x-runway-upstream` response header.
    pub name_header: HeaderValue,
    /// The address to connect to when the host is an IP address (otherwise
    /// the host is resolved at each new connection).
    pub socket_addr: Option<SocketAddr>,
    /// Kept-alive connections, per worker.
    pub(crate) idle: IdleConnections,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
    draining: AtomicBool,
    /// Milliseconds on [`clock_ms`] until which the upstream is passively
    /// ejected; 0 when it is not.
    ejected_until: AtomicU64,
    /// Health-check bookkeeping, written only by this upstream's health task.
    pub(crate) checked: AtomicBool,
    pub(crate) successes: AtomicU32,
    pub(crate) failures: AtomicU32,
}

impl Upstream {
    /// `None` when the name cannot be sent as a header or the URL has no
    /// usable authority (callers have validated the URL already).
    pub fn new(name: String, url: Url, workers: usize) -> Option<Upstream> {
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let socket_addr = match url.host()? {
            url::Host::Ipv4(ip) => Some(SocketAddr::from((ip, port))),
            url::Host::Ipv6(ip) => Some(SocketAddr::from((ip, port))),
            url::Host::Domain(_) => None,
        };
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Some(Upstream {
            authority: authority.parse().ok()?,
            name_header: HeaderValue::from_str(&name).ok()?,
            socket_addr,
            idle: IdleConnections::new(workers),
            name,
            url,
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            ejected_until: AtomicU64::new(0),
            checked: AtomicBool::new(false),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
        })
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Relaxed);
    }

    pub fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Relaxed);
        until != 0 && clock_ms() < until
    }

    /// Passive ejection after a connection error (see [`Pool::eject`] for
    /// the cap).
    fn eject(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let until = clock_ms().saturating_add(duration.as_millis() as u64);
        self.ejected_until.store(until, Relaxed);
    }

    /// Forgets an ejection that has run out (bookkeeping for diagnostics; an
    /// expired deadline already counts as not ejected).
    pub(crate) fn clear_expired_ejection(&self) {
        let until = self.ejected_until.load(Relaxed);
        if until != 0 && clock_ms() >= until {
            let _ = self
                .ejected_until
                .compare_exchange(until, 0, Relaxed, Relaxed);
        }
    }

    fn is_available(&self) -> bool {
        self.is_healthy() && !self.is_ejected()
    }

    pub fn status(&self) -> UpstreamStatus {
        let healthy = self.is_healthy();
        let draining = self.is_draining();
        let ejected = self.is_ejected();
        UpstreamStatus {
            name: self.name.clone(),
            url: self.url.clone(),
            healthy,
            ejected,
            in_pool: healthy && !ejected && !draining,
            outstanding: self.outstanding(),
            draining,
        }
    }
}

/// One upstream as [`crate::Balancer::upstreams`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// Front-end name (controller discovery) or `host:port` (static list).
    pub name: String,
    pub url: Url,
    /// Per the active health checks.
    pub healthy: bool,
    /// Passively ejected after a connection error, and the ejection has not
    /// run out yet.
    pub ejected: bool,
    /// Whether a new request may be sent to it right now.
    pub in_pool: bool,
    /// Requests sent to it whose response has not been fully sent back.
    pub outstanding: usize,
    /// Left discovery (or stopped taking traffic): no new requests, the
    /// in-flight ones finish.
    pub draining: bool,
}

/// Milliseconds since the first call, never 0 (0 means "not ejected").
fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// The upstreams that may take new requests, and the policy that picks.
pub(crate) struct Pool {
    active: ArcSwap<Vec<Arc<Upstream>>>,
    next: AtomicUsize,
    policy: Policy,
    /// Most upstreams that passive signals may keep out at once, in percent
    /// of the snapshot.
    max_ejection_percent: u32,
    /// Serializes ejection decisions, so two workers cannot both take the
    /// last share the cap allows.
    ejecting: Mutex<()>,
}

/// Why [`Pool::eject`] left an upstream in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ejection {
    Ejected,
    /// Passive ejection is off (`eject_for` is zero).
    Disabled,
    /// Ejecting it would take more than the cap out of the pool.
    Capped {
        ejected: usize,
        of: usize,
    },
}

impl Pool {
    pub fn new(policy: Policy, max_ejection_percent: u32) -> Pool {
        Pool {
            active: ArcSwap::from_pointee(Vec::new()),
            next: AtomicUsize::new(0),
            policy,
            max_ejection_percent,
            ejecting: Mutex::new(()),
        }
    }

    /// Ejects `upstream` for `duration` after a failure of the front-end
    /// itself, unless that would leave more than the cap out of the pool.
    /// An upstream already ejected has its ejection renewed.
    pub fn eject(&self, upstream: &Upstream, duration: Duration) -> Ejection {
        if duration.is_zero() {
            return Ejection::Disabled;
        }
        let _decision = self.ejecting.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = self.active.load();
        let of = snapshot.len();
        let ejected = snapshot
            .iter()
            .filter(|u| u.is_ejected() && !std::ptr::eq(Arc::as_ptr(u), upstream))
            .count();
        let allowed = (ejected + 1) * 100 <= self.max_ejection_percent as usize * of;
        if !upstream.is_ejected() && !allowed {
            return Ejection::Capped { ejected, of };
        }
        upstream.eject(duration);
        Ejection::Ejected
    }

    /// The members now.
    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.active.load_full()
    }

    /// Replaces the membership (discovery only).
    pub fn publish(&self, upstreams: Vec<Arc<Upstream>>) {
        self.active.store(Arc::new(upstreams));
    }

    /// Chooses an available upstream not in `tried`, and counts the request
    /// as outstanding on it. `None` when there is none.
    pub fn pick(&self, tried: &[Arc<Upstream>]) -> Option<InFlight> {
        let snapshot = self.active.load();
        let n = snapshot.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Relaxed) % n;
        let mut candidates = (0..n)
            .map(|i| &snapshot[(start + i) % n])
            .filter(|u| u.is_available() && !tried.iter().any(|t| Arc::ptr_eq(t, u)));
        let chosen = match self.policy {
            Policy::RoundRobin => candidates.next(),
            Policy::LeastOutstanding => {
                let mut best: Option<(&Arc<Upstream>, usize)> = None;
                for upstream in candidates {
                    let outstanding = upstream.outstanding();
                    if best.is_none_or(|(_, least)| outstanding < least) {
                        best = Some((upstream, outstanding));
                        if outstanding == 0 {
                            break;
                        }
                    }
                }
                best.map(|(upstream, _)| upstream)
            }
        };
        chosen.map(|upstream| InFlight::new(upstream.clone()))
    }
}

/// A request counted as outstanding on its upstream until dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    upstream: Arc<Upstream>,
}

impl InFlight {
    fn new(upstream: Arc<Upstream>) -> InFlight {
        upstream.outstanding.fetch_add(1, Relaxed);
        InFlight { upstream }
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.outstanding.fetch_sub(1, Relaxed);
    }
}
