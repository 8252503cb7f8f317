//! The controller's side of a farm: registration, heartbeats, artifact
//! distribution, and the links deployments are rolled out through.
//!
//! * A front-end registers with a **join token** (scope `join`, stored hashed,
//!   revocable) on every start. The controller checks its engine settings,
//!   records it, and answers with a **key** for this start:
//!   `HMAC-SHA256(fleet key, name ‖ node id ‖ nonce)`. Only the nonce is
//!   stored; the fleet key lives in `<data-dir>/fleet.key` (0600). A new
//!   registration replaces the nonce, so the previous start's key stops
//!   working. The key authenticates both directions: the front-end's calls
//!   here, and the controller's stage/commit calls to the front-end.
//! * A front-end heartbeats every [`FarmConfig::heartbeat`]; without one for
//!   [`FarmConfig::offline_after`] it is offline: deployments skip it and
//!   balancers stop sending it traffic. It stays listed until an operator
//!   removes it.
//! * The heartbeat reply carries the committed generation. A front-end behind
//!   it (down or disabled during a deployment, or it missed the commit)
//!   reports not ready, fetches the committed table (`GET table`), stages,
//!   commits, and only then reports ready again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use http::StatusCode;
use http::request::Parts;
use runway_api::fleet::{
    EngineSettings, FLEET_V1, FrontendHello, FrontendLink, FrontendProgress, FrontendProgressState,
    Heartbeat, HeartbeatReply, Registered, RoutingTable, StageError, StageReport,
};
use runway_api::readiness::{self, Observed};
use runway_api::v1::{FrontendFlags, FrontendInfo, FrontendList, FrontendState, Scope};
use runway_manifest::Digest;
use runway_server::error_chain;
use runway_store::{
    BlobKind, FrontendRecord, FrontendRegistration, GLOBAL_ZONE, StoreError, now_ms,
};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Controller;
use crate::controller_error::{ControllerError, ControllerResult};
use crate::error::{ApiError, ApiResult};
use crate::identity;

/// How the controller runs its farm.
#[derive(Debug, Clone)]
pub struct FarmConfig {
    /// How often front-ends heartbeat.
    pub heartbeat: Duration,
    /// A front-end without a heartbeat for this long is offline.
    pub offline_after: Duration,
    /// Where front-ends find the catalogs (sent at registration).
    pub frontend_catalog: String,
    /// Secret the front-ends' keys are derived from.
    pub fleet_key: [u8; 32],
}

impl FarmConfig {
    pub fn new(frontend_catalog: String, fleet_key: [u8; 32]) -> FarmConfig {
        FarmConfig {
            heartbeat: Duration::from_secs(1),
            offline_after: Duration::from_secs(5),
            frontend_catalog,
            fleet_key,
        }
    }
}

/// Reads `<data-dir>/fleet.key`, creating it (0600) on first start.
pub fn load_or_create_fleet_key(data_dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    let path = data_dir.join("fleet.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
            let bytes = bytes.with_context(|| {
                format!(
                    "{} is not 64 hex digits; restore it from a backup, or delete it \
                     (every front-end then registers again on its next heartbeat)",
                    path.display()
                )
            })?;
            let mut key = [0; 32];
            key.copy_from_slice(&bytes);
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Controllers sharing a data dir (active and standby) may start
            // together: the key appears whole, once (write aside, then link).
            let key: [u8; 32] = rand::random();
            let tmp = data_dir.join(format!(
                "fleet.key.tmp-{}",
                hex::encode(rand::random::<[u8; 8]>())
            ));
            crate::write_secret(&tmp, &hex::encode(key))?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_fleet_key(data_dir)
                }
                Err(e) => Err(e).with_context(|| format!("failed to write {}", path.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
}

/// Every front-end a deployment reaches: in-process links (`runway up`) and,
/// in a farm, the registered front-ends that are enabled and online.
pub(crate) struct Fleet {
    pub(crate) local: Vec<Arc<dyn FrontendLink>>,
    pub(crate) farm: Option<Farm>,
    /// Bumped whenever the front-end list may have changed (a registration,
    /// a heartbeat that changed what a front-end reports, enable, disable,
    /// remove): what a watch of `GET /frontends` waits on.
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
}

pub(crate) struct Farm {
    pub(crate) config: FarmConfig,
    http: reqwest::Client,
    /// When this controller last became active (ms): heartbeats are counted
    /// from then at the earliest, so a takeover does not find every
    /// front-end "offline" because nobody took its heartbeats meanwhile.
    pub(crate) active_since_ms: std::sync::atomic::AtomicI64,
}

impl Fleet {
    pub(crate) fn new(local: Vec<Arc<dyn FrontendLink>>, farm: Option<FarmConfig>) -> Fleet {
        Fleet {
            local,
            farm: farm.map(|config| Farm {
                config,
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .build()
                    .expect("a TLS-less HTTP client always builds"),
                active_since_ms: std::sync::atomic::AtomicI64::new(0),
            }),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// Wakes every watch of the front-end list.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A registered front-end reached over HTTP.
pub(crate) struct HttpLink {
    name: String,
    address: String,
    key: String,
    http: reqwest::Client,
}

impl Controller {
    /// The links a deployment stages on now, each with its zone (of the
    /// zones in `zones` only, when given), and the registered front-ends it
    /// skips (offline or disabled), as progress entries.
    pub(crate) async fn deployment_targets(
        &self,
        zones: Option<&std::collections::BTreeSet<String>>,
    ) -> ControllerResult<(Vec<(Arc<dyn FrontendLink>, String)>, Vec<FrontendProgress>)> {
        let wanted = |zone: &str| zones.is_none_or(|z| z.contains(zone));
        let mut links: Vec<(Arc<dyn FrontendLink>, String)> = if wanted(GLOBAL_ZONE) {
            // In-process front-ends are in zone global.
            self.inner
                .fleet
                .local
                .iter()
                .map(|l| (l.clone(), GLOBAL_ZONE.to_string()))
                .collect()
        } else {
            Vec::new()
        };
        let mut skipped = Vec::new();
        if let Some(farm) = &self.inner.fleet.farm {
            for record in self.store().frontends().await? {
                if !wanted(&record.zone) {
                    continue;
                }
                if !record.enabled || farm.is_silent(&record) {
                    // Disabled or offline, whatever generation it serves.
                    let state = farm.state(&record, 0, false);
                    skipped.push(FrontendProgress {
                        frontend: record.name,
                        state: FrontendProgressState::Skipped,
                        fetched_bytes: 0,
                        elapsed_ms: 0,
                        error: Some(format!("{state}: it catches up before it serves again")),
                    });
                    continue;
                }
                let link: Arc<dyn FrontendLink> = Arc::new(HttpLink {
                    key: farm.key_for(&record),
                    name: record.name,
                    address: record.address,
                    http: farm.http.clone(),
                });
                links.push((link, record.zone));
            }
        }
        Ok((links, skipped))
    }

    /// `GET /_runway/api/v1/frontends`
    pub async fn frontend_list(&self) -> ControllerResult<FrontendList> {
        let generation = self.store().generation().await?;
        // A front-end is ready at its zone's committed generation.
        let zone_generations: std::collections::BTreeMap<String, i64> = self
            .store()
            .zones()
            .await?
            .into_iter()
            .map(|z| (z.name, z.generation))
            .collect();
        let committed_in = |zone: &str| zone_generations.get(zone).copied().unwrap_or(generation);
        let mut frontends: Vec<FrontendInfo> = self
            .inner
            .fleet
            .local
            .iter()
            .map(|f| {
                let (served, ready) = f.status();
                FrontendInfo {
                    name: f.name().to_string(),
                    address: self.config().base_url.clone(),
                    state: readiness::state(Observed {
                        enabled: true,
                        heartbeating: true,
                        reported_ready: ready,
                        served,
                        committed: committed_in(GLOBAL_ZONE),
                        switching: false,
                    }),
                    generation: served,
                    last_heartbeat_ms: None,
                    flags: FrontendFlags::default(),
                    enabled: true,
                    zone: GLOBAL_ZONE.to_string(),
                }
            })
            .collect();
        let mut offline_after_secs = 0;
        if let Some(farm) = &self.inner.fleet.farm {
            offline_after_secs = farm.config.offline_after.as_secs();
            for record in self.store().frontends().await? {
                let switching = self.is_switching(&record.name);
                frontends.push(FrontendInfo {
                    state: farm.state(&record, committed_in(&record.zone), switching),
                    name: record.name,
                    address: record.address,
                    generation: record.generation,
                    last_heartbeat_ms: Some(record.last_heartbeat_ms),
                    flags: FrontendFlags {
                        serves_apps: record.serves_apps,
                        runs_timers: record.runs_timers,
                        sends_email: record.sends_email,
                    },
                    enabled: record.enabled,
                    zone: record.zone,
                });
            }
        }
        Ok(FrontendList {
            generation,
            offline_after_secs,
            frontends,
            zones: zone_generations.into_keys().collect(),
        })
    }

    /// `runway frontend enable|disable NAME`.
    pub async fn set_frontend_enabled(&self, name: &str, enabled: bool) -> ControllerResult<()> {
        if self.store().set_frontend_enabled(name, enabled).await? {
            self.inner.fleet.changed();
            tracing::info!(frontend = name, enabled, "front-end changed");
            Ok(())
        } else {
            Err(frontend_not_found(name))
        }
    }

    /// `runway frontend remove NAME`: only a front-end that stopped
    /// heartbeating can be removed (a running one would register again).
    pub async fn remove_frontend(&self, name: &str) -> ControllerResult<()> {
        let record = self
            .store()
            .frontend(name)
            .await?
            .ok_or_else(|| frontend_not_found(name))?;
        if let Some(farm) = &self.inner.fleet.farm
            && !farm.is_silent(&record)
        {
            return Err(ControllerError::conflict(format!(
                "front-end {name} is still running (last heartbeat {} ms ago); stop it \
                 first (until then `runway frontend disable {name}` drains it)",
                now_ms() - record.last_heartbeat_ms
            )));
        }
        self.store().remove_frontend(name).await?;
        self.inner.fleet.changed();
        Ok(())
    }
}

fn frontend_not_found(name: &str) -> ControllerError {
    ControllerError::not_found(format!(
        "no front-end named {name} in this environment; `runway frontend list` shows them"
    ))
}

impl Farm {
    /// No heartbeat within the offline timeout.
    fn is_silent(&self, record: &FrontendRecord) -> bool {
        let since = self
            .active_since_ms
            .load(std::sync::atomic::Ordering::SeqCst)
            .max(record.last_heartbeat_ms);
        now_ms() - since > self.config.offline_after.as_millis() as i64
    }

    /// A registered front-end's state as of now, `committed` being its
    /// zone's generation (`switching`: a deployment is switching it).
    fn state(&self, record: &FrontendRecord, committed: i64, switching: bool) -> FrontendState {
        readiness::state(Observed {
            enabled: record.enabled,
            heartbeating: !self.is_silent(record),
            reported_ready: record.ready,
            served: record.generation,
            committed,
            switching,
        })
    }

    fn key_for(&self, record: &FrontendRecord) -> String {
        derive_key(
            &self.config.fleet_key,
            &record.name,
            &record.node_id,
            &record.key_nonce,
        )
    }
}

fn derive_key(fleet_key: &[u8; 32], name: &str, node_id: &str, nonce: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(fleet_key).expect("HMAC takes any key length");
    for part in [name, node_id, nonce] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    format!("rwk_{}", hex::encode(mac.finalize().into_bytes()))
}

#[async_trait]
impl FrontendLink for HttpLink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn stage(&self, table: &RoutingTable) -> Result<StageReport, StageError> {
        let response = self
            .call("stage")
            .json(table)
            // Staging fetches and loads every app it lacks.
            .timeout(Duration::from_secs(300))
            .send()
            .await;
        self.answer(response).await
    }

    async fn commit(&self, generation: i64) -> Result<(), StageError> {
        let response = self
            .call(&format!("commit/{generation}"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        self.answer::<serde_json::Value>(response).await.map(|_| ())
    }

    async fn abort(&self, generation: i64) {
        let _ = self
            .call(&format!("abort/{generation}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
    }

    fn status(&self) -> (i64, bool) {
        (0, false)
    }
}

impl HttpLink {
    fn call(&self, action: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!(
                "{}{FLEET_V1}/{action}",
                self.address.trim_end_matches('/')
            ))
            .bearer_auth(&self.key)
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Result<reqwest::Response>,
    ) -> Result<T, StageError> {
        let io = |reason: String| StageError::Io {
            frontend: self.name.clone(),
            reason,
        };
        let response = response.map_err(|e| {
            let reason = format!("at {}: {}", self.address, error_chain(&e));
            if e.is_connect() {
                StageError::Unreachable {
                    frontend: self.name.clone(),
                    reason,
                }
            } else {
                io(reason)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| io(format!("sent an unreadable answer: {e}")));
        }
        let message = runway_server::error_message(&response.text().await.unwrap_or_default());
        Err(io(format!("answered {status}: {message}")))
    }
}

/// The endpoints front-ends call, under `/_runway/fleet/v1`.
pub fn fleet_router(controller: Controller) -> Router {
    Router::new()
        .route(&format!("{FLEET_V1}/register"), post(register))
        .route(&format!("{FLEET_V1}/heartbeat"), post(heartbeat))
        .route(&format!("{FLEET_V1}/table"), get(table))
        .route(&format!("{FLEET_V1}/packages/{{digest}}"), get(package))
        .route(&format!("{FLEET_V1}/artifacts/{{digest}}"), get(artifact))
        .route(&format!("{FLEET_V1}/email-settings"), get(email_settings))
        // A standby takes heartbeats and serves reads only (see `lease`).
        .route_layer(axum::middleware::from_fn_with_state(
            controller.clone(),
            crate::lease::standby_guard,
        ))
        .with_state(controller)
}

async fn register(
    State(c): State<Controller>,
    headers: http::HeaderMap,
    Json(hello): Json<FrontendHello>,
) -> ApiResult<Json<Registered>> {
    let token = identity::authenticate(&c, &headers).await?;
    if token.scope != Scope::Join {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token '{}' has scope {}, registering a front-end needs a join token; \
                 use <controller data dir>/join.token or `runway token create NAME --scope join`",
                token.name, token.scope
            ),
        ));
    }
    let Some(farm) = &c.inner.fleet.farm else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_farm",
            "this environment runs its front-end in-process (`runway up`); \
             start a farm with `runway controller serve` to add front-ends",
        ));
    };
    if !runway_server::valid_name(&hello.name) {
        return Err(ApiError::bad_request(
            "invalid_frontend",
            format!(
                "front-end name {:?}: {}",
                hello.name,
                runway_server::NAME_RULE
            ),
        ));
    }
    if !(hello.address.starts_with("http://") || hello.address.starts_with("https://"))
        || url::Url::parse(&hello.address).is_err()
    {
        return Err(ApiError::bad_request(
            "invalid_frontend",
            format!(
                "front-end {}: address {:?} is not an http(s) URL; set --advertise",
                hello.name, hello.address
            ),
        ));
    }
    if let Err(message) = runway_server::refuse_credentials(
        &format!("front-end {}: address", hello.name),
        &hello.address,
    ) {
        return Err(ApiError::bad_request(
            "invalid_frontend",
            format!("{message}; set --advertise to an address without them"),
        ));
    }
    let mine = engine_settings(&c);
    if hello.engine != mine {
        return Err(engine_mismatch(&hello, &mine));
    }
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let record = c
        .store()
        .register_frontend(
            &FrontendRegistration {
                name: hello.name.clone(),
                node_id: hello.node_id.clone(),
                address: hello.address.clone(),
                serves_apps: hello.flags.serves_apps,
                runs_timers: hello.flags.runs_timers,
                sends_email: hello.flags.sends_email,
                engine: hello.engine.fingerprint.clone(),
                runway_version: hello.runway_version.clone(),
                zone: hello.zone.clone(),
            },
            &nonce,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_frontend", message)
            }
            StoreError::NotFound(message) => ApiError::bad_request("unknown_zone", message),
            other => other.into(),
        })?;
    tracing::info!(frontend = %record.name, address = %record.address, zone = %record.zone, "front-end registered");
    c.inner.fleet.changed();
    Ok(Json(Registered {
        environment: c.config().environment.clone(),
        key: farm.key_for(&record),
        catalog: farm.config.frontend_catalog.clone(),
        generation: c.store().zone_generation(&record.zone).await?,
        heartbeat_ms: farm.config.heartbeat.as_millis() as u64,
        offline_after_ms: farm.config.offline_after.as_millis() as u64,
        enabled: record.enabled,
    }))
}

/// The engine settings of this controller, as front-ends must match them.
pub fn engine_settings(c: &Controller) -> EngineSettings {
    EngineSettings {
        fingerprint: c.runtime().engine_fingerprint().to_string(),
        max_memory_bytes: c.runtime().config().max_memory_bytes,
    }
}

fn engine_mismatch(hello: &FrontendHello, mine: &EngineSettings) -> ApiError {
    let theirs = &hello.engine;
    let difference = if theirs.max_memory_bytes != mine.max_memory_bytes {
        format!(
            "its memory bound is {} MiB and the controller's is {} MiB; \
             restart it with --memory-mib {}",
            theirs.max_memory_bytes >> 20,
            mine.max_memory_bytes >> 20,
            mine.max_memory_bytes >> 20
        )
    } else {
        format!(
            "it runs Runway {} with engine {}, the controller runs Runway {} with engine {}; \
             run the same runway build on both",
            hello.runway_version,
            theirs.fingerprint,
            env!("CARGO_PKG_VERSION"),
            mine.fingerprint
        )
    };
    ApiError::new(
        StatusCode::CONFLICT,
        "engine_mismatch",
        format!(
            "front-end {} cannot join: its WebAssembly engine settings differ from the \
             controller's, so the controller's compiled artifacts would not load there: {difference}",
            hello.name
        ),
    )
    .with_details(serde_json::json!({ "frontend": theirs, "controller": mine }))
}

/// A front-end that proved who it is with its key.
pub(crate) struct Node(pub(crate) FrontendRecord);

impl FromRequestParts<Controller> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, c: &Controller) -> Result<Node, ApiError> {
        let refused = |why: &str| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("{why}; the front-end registers again to get a new key"),
            )
        };
        let farm = c
            .inner
            .fleet
            .farm
            .as_ref()
            .ok_or_else(|| refused("this environment has no registered front-ends"))?;
        let name = parts
            .headers
            .get(runway_api::FRONTEND_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refused("missing x-runway-frontend header"))?;
        let key = identity::bearer(&parts.headers)?;
        let record = c
            .store()
            .frontend(name)
            .await?
            .ok_or_else(|| refused(&format!("no front-end named {name} is registered")))?;
        let expected = farm.key_for(&record);
        if !bool::from(expected.as_bytes().ct_eq(key.as_bytes())) {
            return Err(refused(&format!(
                "the key of front-end {name} is not current (it was re-registered or removed)"
            )));
        }
        Ok(Node(record))
    }
}

async fn heartbeat(
    State(c): State<Controller>,
    Node(record): Node,
    Json(beat): Json<Heartbeat>,
) -> ApiResult<Json<HeartbeatReply>> {
    // Ready means serving the committed generation, whatever the front-end
    // believes: one that has not heard of a deployment yet is behind. The
    // store compares with the generation committed when it writes, so a
    // deployment recorded meanwhile is not missed.
    let switching = c.is_switching(&record.name);
    let updated = c
        .store()
        .heartbeat_frontend(
            &record.name,
            &record.key_nonce,
            beat.generation,
            beat.ready,
            switching,
        )
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("front-end {} was re-registered meanwhile", record.name),
            )
        })?;
    if updated.ready != record.ready || updated.generation != record.generation {
        c.inner.fleet.changed();
    }
    Ok(Json(HeartbeatReply {
        generation: c.store().zone_generation(&updated.zone).await?,
        enabled: updated.enabled,
    }))
}

/// The committed routing table, for a front-end catching up. Refused while a
/// deployment runs (its table would mix committed and uncommitted state);
/// the front-end asks again on its next heartbeat.
async fn table(State(c): State<Controller>, Node(record): Node) -> ApiResult<Json<RoutingTable>> {
    Ok(Json(c.committed_table(&record.zone).await?))
}

/// The SMTP settings with the password, for a front-end that sends email:
/// only the controller holds the secrets key that opens the password, and
/// this channel is authenticated by the front-end's own key.
async fn email_settings(
    State(c): State<Controller>,
    Node(_record): Node,
) -> ApiResult<Json<Option<runway_api::v1::SmtpDelivery>>> {
    Ok(Json(c.store().smtp_delivery().await?))
}

async fn package(
    State(c): State<Controller>,
    Node(_record): Node,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    serve_file(&c, BlobKind::Package, &digest).await
}

async fn artifact(
    State(c): State<Controller>,
    Node(_record): Node,
    Path(digest): Path<String>,
) -> ApiResult<Response> {
    serve_file(&c, BlobKind::Artifact, &digest).await
}

async fn serve_file(c: &Controller, kind: BlobKind, digest: &str) -> ApiResult<Response> {
    let digest = Digest::parse(digest)
        .map_err(|e| ApiError::bad_request("invalid_digest", format!("{digest:?}: {e}")))?;
    match c.blobs().open(kind, &digest).await {
        Ok(file) => {
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            Ok((
                [(http::header::CONTENT_TYPE, "application/octet-stream")],
                body,
            )
                .into_response())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::not_found(format!(
            "the controller has no {} entry {digest}",
            kind.dir()
        ))),
        Err(e) => Err(ApiError::internal(format!(
            "failed to read {}: {e}",
            c.blobs().path(kind, &digest).display()
        ))),
    }
}
