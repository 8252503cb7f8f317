//! Which upstreams exist: a fixed list, or the controller's list of
//! front-ends followed by a watch (a long poll the controller answers when
//! the list changes; a poll every interval against a controller that cannot
//! watch), and the reconciliation of that list with the pool.
//!
//! # Membership and drain
//!
//! [`Members`] holds the upstreams discovery currently lists (each with its
//! health-check task) and the ones being drained. Applying a new list:
//!
//! - a front-end that appears gets a new [`Upstream`] (unhealthy until its
//!   first check, see [`crate::health`]) and a health task;
//! - a front-end that is still listed at the same address is left alone, with
//!   its health state and in-flight count;
//! - a front-end that left the list, stopped taking traffic
//!   ([`FrontendInfo::takes_traffic`], e.g. disabled or catching up) or moved
//!   to another address is **drained**: it leaves the pool snapshot at once,
//!   so no new request goes to it, while requests already sent to it finish
//!   normally (they hold their own reference). Its health checks stop, and
//!   it is forgotten once its last in-flight request is done, which closes
//!   its kept-alive connections.
//!
//! The pool snapshot is republished only when the membership changed.
//!
//! With several controllers (an active one and standbys), a poll asks the one
//! that answered last and moves on to the next on a failure (see
//! [`Controller`]); only when every one fails is the poll a failure.
//!
//! A poll that fails (controller down, bad answer) changes nothing: the last
//! known list stays, with a warning, so a blink of the controller never
//! empties the pool. Only the *first* discovery, in
//! [`crate::Balancer::start`], turns a failure into an error.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use runway_api::ErrorBody;
use runway_api::v1::{FrontendInfo, FrontendList};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;

use crate::client::{HttpClient, UpstreamBody};
use crate::config::{display_url, upstream_name};
use crate::error::{BalancerError, Result};
use crate::health::{Checker, display_duration};
use crate::pool::{Pool, Upstream, UpstreamStatus};

/// A whole discovery exchange (connect, answer, body) must fit in this.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest front-end list the balancer reads.
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;
/// How long a watch of the controller's list waits for a change.
const WATCH_WAIT: Duration = Duration::from_secs(25);
/// While the controller stays unreachable, a warning every this many polls.
const WARN_EVERY: u32 = 60;

/// An upstream as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub name: String,
    pub url: Url,
}

/// Targets of a static `--upstream` list (validated by the configuration).
pub(crate) fn static_targets(urls: &[Url]) -> Vec<Target> {
    urls.iter()
        .filter_map(|url| {
            let name = upstream_name(url).ok()?;
            Some(Target {
                name,
                url: url.clone(),
            })
        })
        .collect()
}

/// The upstreams discovery lists and the ones being drained.
pub(crate) struct Members {
    pool: Arc<Pool>,
    checker: Arc<Checker>,
    /// Worker threads, each with its own idle connections per upstream.
    workers: usize,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    current: Vec<Member>,
    draining: Vec<Arc<Upstream>>,
    /// Front-end entries already reported as unusable, so a bad entry is
    /// warned about once, not at every poll.
    rejected: HashSet<(String, String)>,
    stopped: bool,
}

struct Member {
    upstream: Arc<Upstream>,
    health: JoinHandle<()>,
}

impl Members {
    pub fn new(pool: Arc<Pool>, checker: Arc<Checker>, workers: usize) -> Members {
        Members {
            pool,
            checker,
            workers,
            registry: Mutex::new(Registry::default()),
        }
    }

    /// Reconciles the pool with `targets` (see the module doc) and returns the
    /// upstreams it added. With `initial`, the new upstreams' health tasks
    /// skip their immediate check because the caller runs it.
    pub fn apply(&self, targets: Vec<Target>, initial: bool) -> Vec<Arc<Upstream>> {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if registry.stopped {
            return Vec::new();
        }
        let mut previous: Vec<Option<Member>> = std::mem::take(&mut registry.current)
            .into_iter()
            .map(Some)
            .collect();
        let mut next = Vec::with_capacity(targets.len());
        let mut added = Vec::new();
        let mut changed = false;
        for target in targets {
            if next.iter().any(|m: &Member| m.upstream.name == target.name) {
                continue;
            }
            let kept = previous.iter_mut().find_map(|slot| {
                let same = slot.as_ref().is_some_and(|m| {
                    m.upstream.name == target.name && m.upstream.url == target.url
                });
                if same { slot.take() } else { None }
            });
            if let Some(member) = kept {
                next.push(member);
                continue;
            }
            let Some(upstream) =
                Upstream::new(target.name.clone(), target.url.clone(), self.workers)
            else {
                if registry
                    .rejected
                    .insert((target.name.clone(), target.url.to_string()))
                {
                    tracing::warn!(
                        upstream = %target.name,
                        "front-end {} has an address the balancer cannot use ({}); skipping it",
                        target.name,
                        target.url
                    );
                }
                continue;
            };
            let upstream = Arc::new(upstream);
            tracing::info!(
                upstream = %upstream.name,
                url = %upstream.url,
                "front-end {} joined the pool's candidates at {}",
                upstream.name,
                display_url(&upstream.url)
            );
            let health = self.checker.spawn(upstream.clone(), !initial);
            added.push(upstream.clone());
            next.push(Member { upstream, health });
            changed = true;
        }
        for member in previous.into_iter().flatten() {
            member.health.abort();
            member.upstream.start_draining();
            tracing::info!(
                upstream = %member.upstream.name,
                "front-end {} left discovery or stopped taking traffic; draining {} in-flight requests",
                member.upstream.name,
                member.upstream.outstanding()
            );
            registry.draining.push(member.upstream);
            changed = true;
        }
        if changed {
            self.pool
                .publish(next.iter().map(|m| m.upstream.clone()).collect());
        }
        registry.current = next;
        registry.forget_drained();
        added
    }

    /// Every known upstream: the listed ones in discovery order, then the
    /// ones still draining.
    pub fn statuses(&self) -> Vec<UpstreamStatus> {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.forget_drained();
        registry
            .current
            .iter()
            .map(|m| m.upstream.status())
            .chain(registry.draining.iter().map(|u| u.status()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .len()
    }

    /// Stops every health check; later lists are ignored.
    pub fn stop(&self) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.stopped = true;
        for member in &registry.current {
            member.health.abort();
        }
    }
}

impl Registry {
    fn forget_drained(&mut self) {
        self.draining.retain(|upstream| {
            let busy = upstream.outstanding() > 0;
            if !busy {
                tracing::info!(
                    upstream = %upstream.name,
                    "front-end {} is drained",
                    upstream.name
                );
            }
            busy
        });
    }
}

/// The controllers' front-end list endpoint, as the balancer calls it: the
/// active controller and its standbys (a standby's list is as good as the
/// active one's: both read the catalog). The one that answered last is asked
/// first; on a connection error, timeout or 5xx the next one is; an answer
/// carrying `x-runway-active-controller` (a standby's) moves the next poll to
/// the controller it names, when that is one of ours.
pub(crate) struct Controller {
    client: HttpClient,
    endpoints: Vec<Endpoint>,
    current: std::sync::atomic::AtomicUsize,
    authorization: HeaderValue,
    /// The URLs as given, for messages.
    display: String,
}

struct Endpoint {
    uri: Uri,
    /// The URL as given, for messages and to match a standby's pointer.
    display: String,
}

impl Controller {
    /// `url`, `standbys` and `token` have been validated by the configuration.
    pub fn new(client: HttpClient, url: &Url, standbys: &[Url], token: &str) -> Result<Controller> {
        let mut endpoints = Vec::new();
        for url in std::iter::once(url).chain(standbys) {
            let display = display_url(url);
            let uri = format!("{display}{}/frontends", runway_api::API_V1)
                .parse()
                .map_err(|e| BalancerError::BadController {
                    url: url.to_string(),
                    reason: format!("does not make a valid request URI ({e})"),
                })?;
            if !endpoints.iter().any(|e: &Endpoint| e.display == display) {
                endpoints.push(Endpoint { uri, display });
            }
        }
        let authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| BalancerError::BadToken)?;
        let display = endpoints
            .iter()
            .map(|e| e.display.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Controller {
            client,
            endpoints,
            current: std::sync::atomic::AtomicUsize::new(0),
            authorization,
            display,
        })
    }

    /// One `GET /_runway/api/v1/frontends` from the first controller that
    /// answers, each bounded by [`DISCOVERY_TIMEOUT`]; with `watch` (the tag
    /// of the list the balancer has) a long poll that the controller answers
    /// once the list changed (or after [`WATCH_WAIT`]). Also returns the
    /// answer's tag: `None` from a controller that cannot watch. A refused
    /// token is not retried elsewhere (every controller shares the
    /// catalog's tokens).
    pub async fn fetch_watching(
        &self,
        watch: Option<&str>,
    ) -> Result<(FrontendList, Option<String>)> {
        use std::sync::atomic::Ordering;
        let timeout = match watch {
            Some(_) => WATCH_WAIT + DISCOVERY_TIMEOUT,
            None => DISCOVERY_TIMEOUT,
        };
        let count = self.endpoints.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut last = None;
        for offset in 0..count {
            let index = (first + offset) % count;
            let endpoint = &self.endpoints[index];
            let answer = match tokio::time::timeout(timeout, self.exchange(endpoint, watch)).await {
                Ok(result) => result,
                Err(_) => Err(BalancerError::ControllerUnreachable {
                    controller: endpoint.display.clone(),
                    reason: format!("no answer within {}", display_duration(timeout)),
                }),
            };
            match answer {
                Ok((list, active, tag)) => {
                    let next = active
                        .and_then(|a| {
                            let a = a.trim().trim_end_matches('/');
                            self.endpoints.iter().position(|e| e.display == a)
                        })
                        .unwrap_or(index);
                    self.current.store(next, Ordering::Relaxed);
                    return Ok((list, tag));
                }
                Err(e @ BalancerError::ControllerRefusedToken { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("a balancer has at least one controller"))
    }

    /// The controller that answered last (or that a standby named): the
    /// active one as far as discovery knows.
    fn current_display(&self) -> &str {
        use std::sync::atomic::Ordering;
        let index = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        &self.endpoints[index].display
    }

    /// One exchange with one controller: its list, and the active
    /// controller it names if it is a standby.
    async fn exchange(
        &self,
        endpoint: &Endpoint,
        watch: Option<&str>,
    ) -> Result<(FrontendList, Option<String>, Option<String>)> {
        let mut request = Request::new(UpstreamBody::empty());
        *request.uri_mut() = match watch {
            // Tags are the controller's hex digits; anything else is not sent.
            Some(tag) if tag.bytes().all(|b| b.is_ascii_alphanumeric()) => format!(
                "{}?watch={tag}&wait_ms={}",
                endpoint.uri,
                WATCH_WAIT.as_millis()
            )
            .parse()
            .unwrap_or_else(|_| endpoint.uri.clone()),
            _ => endpoint.uri.clone(),
        };
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static("runway-balancer"));
        let response = self.client.request(request).await.map_err(|e| {
            BalancerError::ControllerUnreachable {
                controller: endpoint.display.clone(),
                reason: crate::proxy::describe_error(&e),
            }
        })?;
        let status = response.status();
        let active = response
            .headers()
            .get(runway_api::ACTIVE_CONTROLLER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let tag = response
            .headers()
            .get(runway_api::v1::FRONTEND_LIST_TAG_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), MAX_LIST_BYTES)
            .collect()
            .await
            .map_err(|e| BalancerError::ControllerBadList {
                controller: endpoint.display.clone(),
                reason: format!("reading the answer failed: {e}"),
            })?
            .to_bytes();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(BalancerError::ControllerRefusedToken {
                controller: endpoint.display.clone(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| format!(" ({})", e.message))
                .unwrap_or_default();
            return Err(BalancerError::ControllerStatus {
                controller: endpoint.display.clone(),
                status: status.as_u16(),
                detail,
            });
        }
        let list = serde_json::from_slice(&body).map_err(|e| BalancerError::ControllerBadList {
            controller: endpoint.display.clone(),
            reason: e.to_string(),
        })?;
        Ok((list, active, tag))
    }
}

/// The front-ends of a list that may take traffic, as targets. Entries whose
/// address is unusable are left out (and warned about by [`Members::apply`]
/// if their address parses, here otherwise).
pub(crate) fn controller_targets(list: &FrontendList, zone: &str) -> Vec<Target> {
    list.frontends
        .iter()
        .filter(|f| f.zone == zone && f.takes_traffic())
        .filter_map(target_of)
        .collect()
}

fn target_of(frontend: &FrontendInfo) -> Option<Target> {
    let checked = Url::parse(&frontend.address)
        .map_err(|e| e.to_string())
        .and_then(|url| upstream_name(&url).map(|_| url));
    match checked {
        Ok(url) => Some(Target {
            name: frontend.name.clone(),
            url,
        }),
        Err(reason) => {
            tracing::debug!(
                upstream = %frontend.name,
                "front-end {} has an unusable address {:?} ({reason}); skipping it",
                frontend.name,
                frontend.address
            );
            None
        }
    }
}

/// Keeps the platform pool (`--pass-api`) pointed at the controller that
/// discovery last heard from: after a takeover, API requests go to the new
/// active controller instead of a standby that refuses writes.
pub(crate) struct PlatformFollower {
    pool: Arc<Pool>,
    workers: usize,
}

impl PlatformFollower {
    pub fn new(pool: Arc<Pool>, workers: usize) -> PlatformFollower {
        PlatformFollower { pool, workers }
    }

    pub fn follow(&self, controller: &Controller) {
        let Ok(url) = Url::parse(controller.current_display()) else {
            return;
        };
        if self.pool.upstreams().first().is_some_and(|u| u.url == url) {
            return;
        }
        let Some(upstream) = Upstream::new("controller".into(), url.clone(), self.workers) else {
            return;
        };
        upstream.set_healthy(true);
        tracing::info!("API requests now go to the controller at {url}");
        self.pool.publish(vec![Arc::new(upstream)]);
    }
}

/// Follows the controller until `stop` turns true: a watch (long poll) that
/// the controller answers as soon as its list changes, so a front-end that
/// joins or leaves changes the pool at once; against a controller that
/// cannot watch (no tag in its answer), or after a failure, a poll every
/// `interval`.
pub(crate) fn spawn_controller_loop(
    controller: Controller,
    zones: Vec<(String, Arc<Members>)>,
    platform: Option<PlatformFollower>,
    interval: Duration,
    tag: Option<String>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures: u32 = 0;
        // The first discovery was done at start: watch from its tag at once
        // (or poll after an interval if the controller cannot watch).
        let mut wait = tag.is_none();
        let mut tag = tag;
        loop {
            let fetched = tokio::select! {
                _ = crate::server::signalled(&mut stop) => break,
                fetched = async {
                    if wait {
                        tokio::time::sleep(interval).await;
                    }
                    controller.fetch_watching(tag.as_deref()).await
                } => fetched,
            };
            match fetched {
                Ok((list, new_tag)) => {
                    if failures > 0 {
                        tracing::info!(
                            "the controller at {} answers again after {failures} failed polls",
                            controller.display
                        );
                    }
                    failures = 0;
                    for (zone, members) in &zones {
                        members.apply(controller_targets(&list, zone), false);
                    }
                    if let Some(platform) = &platform {
                        platform.follow(&controller);
                    }
                    wait = new_tag.is_none();
                    tag = new_tag;
                }
                Err(error) => {
                    if failures.is_multiple_of(WARN_EVERY) {
                        tracing::warn!(
                            "front-end discovery failed; keeping the last known {} front-ends: {error}",
                            zones.iter().map(|(_, m)| m.len()).sum::<usize>()
                        );
                    }
                    failures = failures.saturating_add(1);
                    tag = None;
                    wait = true;
                }
            }
        }
        tracing::debug!("front-end discovery stopped");
    })
}
