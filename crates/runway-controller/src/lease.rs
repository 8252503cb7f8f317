//! One active controller per environment: the controller lease.
//!
//! `runway controller serve` holds its authority as a lease in the platform
//! catalog (`runway_store::Store::acquire_lease`): taken or renewed every
//! [`LeaseConfig::renew_every`] (1 s by default) with a compare-and-set, it
//! expires [`LeaseConfig::ttl`] (5 s, `--lease-ms`) after its last renewal on
//! the database clock. A controller that does not hold it is a **standby**:
//!
//! * it serves reads (`GET`/`HEAD`) and front-end heartbeats (liveness, not
//!   a decision), with the header `x-runway-active-controller: <address>` so
//!   clients can follow the active one;
//! * it refuses every other write with 503 `standby`, naming the active
//!   controller and its address ([`standby_guard`]);
//! * it tries to take the lease at every renewal tick, so it takes over at
//!   most `ttl + renew_every` after the active one stopped renewing. Taking
//!   over fails the deployments the previous holder left unrecorded (as a
//!   restart does) and fences the store with the new term: a controller that
//!   lost its lease can never record a deployment (`Store::set_fence`).
//!
//! A controller whose renewals fail (database unreachable) stops acting as
//! active once its lease may have expired: `ttl` after the start of its last
//! successful renewal on its own monotonic clock, which is never later than
//! the expiry the database computed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode};
use runway_store::{Fence, Lease, LeaseState, now_ms};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Controller;
use crate::error::ApiError;

/// Whether a controller decides, or only serves reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease (or runs alone, `runway up`).
    Active,
    /// Another controller holds the lease (`holder` empty: nobody does right
    /// now, a takeover is due).
    Standby { holder: String, address: String },
}

/// How a controller campaigns for the lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This controller's id in the lease row (random per start).
    pub id: String,
    /// Where clients reach this controller (`--advertise`).
    pub address: String,
    /// How long a lease lasts after its last renewal (`--lease-ms`).
    pub ttl: Duration,
    /// How often the holder renews and a standby tries to take over.
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// Renewal every second, or a third of `ttl` if that is shorter.
    pub fn new(id: String, address: String, ttl: Duration) -> LeaseConfig {
        LeaseConfig {
            id,
            address,
            ttl,
            renew_every: (ttl / 3).min(Duration::from_secs(1)),
        }
    }
}

/// A random id for this controller process: `<host>-<8 hex digits>`.
pub fn new_holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(40)
        .collect();
    let suffix = hex::encode(rand::random::<[u8; 4]>());
    if host.is_empty() {
        format!("controller-{suffix}")
    } else {
        format!("{host}-{suffix}")
    }
}

impl Controller {
    /// This controller's role now.
    pub fn role(&self) -> Role {
        self.inner
            .role
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_active(&self) -> bool {
        self.role() == Role::Active
    }

    fn set_role(&self, role: Role) {
        *self.inner.role.write().unwrap_or_else(|p| p.into_inner()) = role;
    }

    /// The term this controller holds, if it holds the lease.
    pub fn lease_term(&self) -> Option<i64> {
        let term = self.inner.lease_term.load(Ordering::SeqCst);
        (term > 0).then_some(term)
    }

    /// Takes the lease once (at start): active if it was free (or held by
    /// this controller's previous process at the same address), standby
    /// otherwise. Nothing is served before this answers.
    pub async fn campaign_once(&self, config: &LeaseConfig) -> runway_store::Result<Role> {
        self.set_role(Role::Standby {
            holder: String::new(),
            address: String::new(),
        });
        let lease = self
            .store()
            .reclaim_lease(&config.id, &config.address, config.ttl)
            .await?;
        self.apply_lease(config, lease).await;
        Ok(self.role())
    }

    /// Renews (or takes) the lease every `renew_every` until `stop`.
    pub fn spawn_lease_loop(
        &self,
        config: LeaseConfig,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let controller = self.clone();
        tokio::spawn(async move {
            // When the lease held may have expired, by our own clock.
            let mut held_until = controller
                .is_active()
                .then(|| Instant::now() + config.ttl - config.renew_every);
            let mut failures = 0u32;
            loop {
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(config.renew_every) => {}
                }
                let started = Instant::now();
                let attempt = controller
                    .store()
                    .acquire_lease(
                        &config.id,
                        &config.address,
                        controller.lease_term(),
                        config.ttl,
                    )
                    .await;
                match attempt {
                    Ok(lease) => {
                        failures = 0;
                        if matches!(lease, Lease::Held(_)) {
                            held_until = Some(started + config.ttl);
                        } else {
                            held_until = None;
                        }
                        controller.apply_lease(&config, lease).await;
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(30) {
                            tracing::warn!(failures, "cannot renew the controller lease: {e}");
                        }
                        if held_until.is_some_and(|until| Instant::now() >= until) {
                            held_until = None;
                            controller.step_down(String::new(), String::new());
                        }
                    }
                }
            }
        })
    }

    async fn apply_lease(&self, config: &LeaseConfig, lease: Lease) {
        match lease {
            Lease::Held(state) => {
                if self.is_active() && self.lease_term() == Some(state.term) {
                    return;
                }
                self.take_over(config, &state).await;
            }
            Lease::Other(LeaseState {
                holder, address, ..
            }) => self.step_down(holder, address),
        }
    }

    /// Became the holder: fence the store with the new term, finish what the
    /// previous holder left, then accept writes.
    async fn take_over(&self, config: &LeaseConfig, state: &LeaseState) {
        self.store().set_fence(Some(Fence {
            holder: config.id.clone(),
            term: state.term,
        }));
        self.inner.lease_term.store(state.term, Ordering::SeqCst);
        if let Some(farm) = &self.inner.fleet.farm {
            farm.active_since_ms.store(now_ms(), Ordering::SeqCst);
        }
        // A deployment the previous holder did not record never happened;
        // one it recorded is committed, and front-ends catch up by themselves.
        if let Err(e) = self.restore().await {
            tracing::error!("after taking the controller lease: {e}");
        }
        self.set_role(Role::Active);
        tracing::info!(
            id = %config.id,
            address = %config.address,
            term = state.term,
            "this controller holds the lease: it is the active controller"
        );
    }

    fn step_down(&self, holder: String, address: String) {
        let was_active = self.is_active();
        self.inner.lease_term.store(0, Ordering::SeqCst);
        let role = Role::Standby {
            holder: holder.clone(),
            address: address.clone(),
        };
        if self.role() != role {
            if was_active {
                tracing::warn!(
                    active = %holder,
                    %address,
                    "this controller lost its lease; it is a standby now"
                );
            } else if !holder.is_empty() {
                tracing::info!(active = %holder, %address, "standby: the active controller is {holder}");
            }
        }
        self.set_role(role);
    }

    /// Gives the lease up (clean stop), so a standby takes over at once.
    pub async fn release_lease(&self, config: &LeaseConfig) {
        let Some(term) = self.lease_term() else {
            return;
        };
        self.step_down(String::new(), String::new());
        match self.store().release_lease(&config.id, term).await {
            Ok(_) => tracing::info!("released the controller lease"),
            Err(e) => tracing::warn!("failed to release the controller lease: {e}"),
        }
    }
}

pub use runway_api::ACTIVE_CONTROLLER_HEADER;

/// Route layer: a standby answers reads (and front-end heartbeats) and
/// refuses every other request with 503 `standby`, naming the active one.
pub async fn standby_guard(State(c): State<Controller>, request: Request, next: Next) -> Response {
    let Role::Standby { holder, address } = c.role() else {
        return next.run(request).await;
    };
    let read = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let heartbeat = request.method() == Method::POST
        && request.uri().path() == format!("{}/heartbeat", runway_api::fleet::FLEET_V1);
    let mut response = if read || heartbeat {
        next.run(request).await
    } else {
        standby_error(&holder, &address).into_response()
    };
    // Present on every answer of a standby (empty while nobody is active).
    let value = HeaderValue::from_str(&address).unwrap_or(HeaderValue::from_static(""));
    response
        .headers_mut()
        .insert(ACTIVE_CONTROLLER_HEADER, value);
    response
}

fn standby_error(holder: &str, address: &str) -> ApiError {
    let message = if holder.is_empty() {
        "this controller is a standby and no controller is active right now (the lease \
         expired); one takes over within a second or two: retry"
            .to_string()
    } else {
        format!(
            "this controller is a standby; the active controller is {holder} at {address}: \
             send writes there"
        )
    };
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        runway_api::STANDBY_CODE,
        message,
    )
    .with_details(serde_json::json!({ "active_id": holder, "active_address": address }))
}
