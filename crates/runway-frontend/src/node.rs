//! A front-end of a farm (`runway frontend serve`): a process of its own that
//! registers with the controller, heartbeats, catches up with the committed
//! generation by itself, and answers the controller's stage/commit calls.
//!
//! Start-up order: bind the listener (its address is what registers), start
//! the engine (its settings are checked at registration), register (a wrong
//! join token, mismatched engine or duplicate name stops here with the
//! controller's message), open the catalogs the controller named, then serve.
//! `/_runway/ready` answers 503 until the committed table is loaded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use runway_api::fleet::{
    EngineSettings, FLEET_V1, FrontendHello, FrontendLink, Heartbeat, HeartbeatReply, Registered,
    RoutingTable, StageError,
};
use runway_api::v1::FrontendFlags;
use runway_api::v1::{LogKind, LogLevel};
use runway_api::{ErrorBody, FRONTEND_HEADER};
use runway_manifest::Digest;
use runway_runtime::{Runtime, RuntimeConfig};
use runway_store::{BlobKind, NewLogEntry, Store, now_ms};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{ArtifactSource, Frontend, FrontendConfig};

/// Everything `runway frontend serve` can be told.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The controllers' base URLs: the active one and its standbys, in the
    /// order they are tried (the front-end follows whichever is active).
    pub controllers: Vec<url::Url>,
    pub join_token: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// URL the controller and balancers reach this front-end at; defaults to
    /// `http://<bound address>`.
    pub advertise: Option<String>,
    /// Defaults to the name kept in the data directory, else `<host>-<port>`.
    pub name: Option<String>,
    pub flags: FrontendFlags,
    /// Where the catalogs are, if not where the controller says.
    pub database: Option<String>,
    pub runtime: RuntimeConfig,
    pub max_package_bytes: u64,
    /// Header-read and keep-alive timeouts, connection bound.
    pub connections: runway_server::ConnectionSettings,
    /// Per-app output limits of this front-end's log writer.
    pub log_limits: runway_store::LogLimits,
    /// How timers run here (only with the timers flag).
    pub timers: crate::TimerSettings,
    /// The deployment zone it joins (`--zone`, default `global`): it loads
    /// only that zone's apps.
    pub zone: String,
    /// PEM CA bundle that other zones' HTTPS addresses are verified against
    /// (`--internal-ca`); default: the web PKI roots.
    pub internal_ca: Option<PathBuf>,
    /// The bearer token `/_runway/metrics` requires (`--metrics-token`).
    pub metrics_token: Option<String>,
}

/// What a front-end keeps about itself across restarts (`<data-dir>/frontend.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    name: String,
    node_id: String,
}

/// A running farm front-end.
pub struct FrontendNode {
    addr: SocketAddr,
    frontend: Frontend,
    store: Store,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    agent: JoinHandle<()>,
    timers: Option<crate::TimerScheduler>,
    email: Option<crate::TimerScheduler>,
}

/// The current key (it changes when the front-end registers again).
type KeyCell = Arc<ArcSwap<String>>;

/// Calls from this front-end to its controller.
#[derive(Clone)]
struct ControllerClient {
    controllers: Controllers,
    name: String,
    key: KeyCell,
    http: reqwest::Client,
}

/// The controllers of the environment (one active, the others standbys), and
/// which one is believed active. Every call goes to that one; on a
/// connection error, or a standby's refusal (503 with the
/// `x-runway-active-controller` header), it goes to the one the standby
/// names if that is in the list, else to the next, each at most twice per call.
#[derive(Clone)]
struct Controllers {
    bases: Arc<Vec<String>>,
    current: Arc<std::sync::atomic::AtomicUsize>,
}

impl Controllers {
    fn new(urls: &[url::Url]) -> Controllers {
        Controllers {
            bases: Arc::new(
                urls.iter()
                    .map(|u| u.as_str().trim_end_matches('/').to_string())
                    .collect(),
            ),
            current: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// The controller believed active, for messages.
    fn base(&self) -> &str {
        &self.bases[self.current.load(std::sync::atomic::Ordering::Relaxed) % self.bases.len()]
    }

    fn index_of(&self, address: &str) -> Option<usize> {
        let address = address.trim().trim_end_matches('/');
        self.bases.iter().position(|b| b == address)
    }

    /// Sends `build(base)` to the active controller, following it (see the
    /// type's doc). Returns the answer, or every connection error.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        use std::sync::atomic::Ordering;
        let count = self.bases.len();
        let mut index = self.current.load(Ordering::Relaxed) % count;
        let mut errors: Vec<String> = Vec::new();
        for _ in 0..count * 2 {
            let base = &self.bases[index];
            let next = (index + 1) % count;
            match build(base).send().await {
                Err(e) => {
                    errors.push(format!("{base}: {}", runway_server::error_chain(&e)));
                    index = next;
                }
                Ok(response) => {
                    let active = response
                        .headers()
                        .get(runway_api::ACTIVE_CONTROLLER_HEADER)
                        .map(|v| v.to_str().ok().and_then(|a| self.index_of(a)));
                    match active {
                        // A standby refused: go where it says, else on.
                        Some(named) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                            errors.push(format!("{base}: a standby controller"));
                            index = named.filter(|&n| n != index).unwrap_or(next);
                        }
                        // A standby answered: ask the active one next time.
                        Some(named) => {
                            self.current
                                .store(named.unwrap_or(index), Ordering::Relaxed);
                            return Ok(response);
                        }
                        None => {
                            self.current.store(index, Ordering::Relaxed);
                            return Ok(response);
                        }
                    }
                }
            }
        }
        errors.dedup();
        Err(errors.join("; "))
    }
}

impl FrontendNode {
    pub async fn start(config: NodeConfig) -> anyhow::Result<FrontendNode> {
        // App-to-app calls to other zones: checked before anything binds.
        let ca_bundle = match &config.internal_ca {
            Some(path) => Some(std::fs::read(path).with_context(|| {
                format!(
                    "--internal-ca {}: cannot read the CA bundle",
                    path.display()
                )
            })?),
            None => None,
        };
        let internal_calls =
            crate::internal::InternalCalls::new(&config.zone, ca_bundle.as_deref()).map_err(
                |e| match &config.internal_ca {
                    Some(path) => anyhow::anyhow!("--internal-ca {}: {e}", path.display()),
                    None => anyhow::anyhow!(e),
                },
            )?;
        if config.controllers.is_empty() {
            bail!(
                "--controller: give the URL of `runway controller serve` (repeat it, or separate with commas, for its standbys)"
            );
        }
        for controller in &config.controllers {
            if !matches!(controller.scheme(), "http" | "https") {
                bail!(
                    "--controller {controller}: must be an http:// or https:// URL of `runway controller serve`"
                );
            }
            runway_server::refuse_credentials("--controller", controller.as_str())
                .map_err(anyhow::Error::msg)?;
        }
        if let Some(advertise) = &config.advertise {
            runway_server::refuse_credentials("--advertise", advertise)
                .map_err(anyhow::Error::msg)?;
        }
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "failed to create data directory {}",
                config.data_dir.display()
            )
        })?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "failed to listen on {} (is another front-end using it? pick another with --listen)",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let address = config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let identity = load_identity(&config.data_dir, config.name.as_deref(), addr.port())?;
        let runtime =
            Runtime::new(config.runtime).context("failed to start the WebAssembly engine")?;

        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("failed to build an HTTP client")?;
        let hello = FrontendHello {
            name: identity.name.clone(),
            node_id: identity.node_id.clone(),
            address: address.clone(),
            flags: config.flags,
            engine: EngineSettings {
                fingerprint: runtime.engine_fingerprint().to_string(),
                max_memory_bytes: config.runtime.max_memory_bytes,
            },
            runway_version: env!("CARGO_PKG_VERSION").to_string(),
            zone: config.zone.clone(),
        };
        let controllers = Controllers::new(&config.controllers);
        let registered = register(&http, &controllers, &config.join_token, &hello).await?;
        let client = ControllerClient {
            controllers,
            name: identity.name.clone(),
            key: Arc::new(ArcSwap::from_pointee(registered.key.clone())),
            http,
        };

        let catalog = config
            .database
            .clone()
            .unwrap_or(registered.catalog.clone());
        let store = Store::open(&catalog).await.with_context(|| {
            format!(
                "failed to open the environment's catalogs at {} (the controller's \
                 --frontend-database, or this front-end's --database)",
                runway_store::redact_url(&catalog)
            )
        })?;
        store.set_log_limits(config.log_limits);
        let frontend = Frontend::new(
            FrontendConfig {
                name: identity.name.clone(),
                cache_dir: config.data_dir.join("cache"),
                max_package_bytes: config.max_package_bytes,
            },
            runtime,
            store.clone(),
            Arc::new(client.clone()),
        )?;
        frontend.inner.note_committed(registered.generation);
        frontend.inner.internal.store(Arc::new(internal_calls));

        let smtp_source: Arc<dyn crate::SmtpSource> = Arc::new(client.clone());
        let app = crate::router(frontend.clone())
            .merge(fleet_router(frontend.clone(), client.key.clone()))
            .merge(runway_server::metrics_router(
                runway_server::metrics::MetricsEndpoint::new(
                    vec![frontend.metrics_registry()],
                    config.metrics_token.clone(),
                ),
                runway_server::metrics::ENVIRONMENT_PATH,
            ));
        let (stop, stopped) = watch::channel(false);
        let server = runway_server::spawn_server(listener, app, stopped, config.connections);
        let agent = tokio::spawn(run_agent(
            frontend.clone(),
            client,
            config.join_token.clone(),
            hello,
            Duration::from_millis(registered.heartbeat_ms.max(100)),
            stop.subscribe(),
        ));
        tracing::info!(
            frontend = %identity.name,
            %address,
            environment = %registered.environment,
            "front-end registered and serving"
        );
        let timers = config
            .flags
            .runs_timers
            .then(|| frontend.start_timers(config.timers));
        let email = config
            .flags
            .sends_email
            .then(|| frontend.start_email(config.timers, smtp_source));
        Ok(FrontendNode {
            addr,
            frontend,
            store,
            stop,
            server,
            agent,
            timers,
            email,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn frontend(&self) -> &Frontend {
        &self.frontend
    }

    /// Stops heartbeating and accepting, lets requests in flight finish (up
    /// to `deadline`), flushes the log writer and closes the catalogs.
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        if let Some(timers) = self.timers {
            timers.stop().await;
        }
        if let Some(email) = self.email {
            email.stop().await;
        }
        let _ = self.agent.await;
        let joined = runway_server::join_servers([self.server], deadline).await;
        // Past the deadline: guests still computing stop at the next tick.
        self.frontend.inner.runtime.interrupt_guests();
        joined?;
        self.store.close().await;
        Ok(())
    }
}

/// Reads (or creates) the front-end's identity. `--name` wins over the
/// stored name; the node id never changes for a data directory.
fn load_identity(data_dir: &Path, name: Option<&str>, port: u16) -> anyhow::Result<Identity> {
    let path = data_dir.join("frontend.json");
    let stored: Option<Identity> = match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a front-end identity file; delete it to start as a new front-end",
                path.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
    };
    let name = match (name, &stored) {
        (Some(name), _) => name.to_string(),
        (None, Some(stored)) => stored.name.clone(),
        (None, None) => default_name(port),
    };
    if !runway_server::valid_name(&name) {
        bail!("--name {name:?}: {}", runway_server::NAME_RULE);
    }
    let identity = Identity {
        name,
        node_id: stored
            .map(|s| s.node_id)
            .unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>())),
    };
    runway_store::files::write_atomically(&path, &serde_json::to_vec_pretty(&identity)?, None)
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(identity)
}

fn default_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(50)
        .collect();
    if host.is_empty() {
        format!("fe-{port}")
    } else {
        format!("{host}-{port}")
    }
}

/// Registers; every refusal becomes one error in the controller's words.
async fn register(
    http: &reqwest::Client,
    controllers: &Controllers,
    join_token: &str,
    hello: &FrontendHello,
) -> anyhow::Result<Registered> {
    let response = controllers
        .send(|base| {
            http.post(format!("{base}{FLEET_V1}/register"))
                .bearer_auth(join_token.trim())
                .json(hello)
                .timeout(Duration::from_secs(30))
        })
        .await
        .map_err(|errors| {
            anyhow::anyhow!(
                "cannot reach the controller at {errors}; is `runway controller serve` \
                 running there? check --controller"
            )
        })?;
    let base = controllers.base();
    let url = format!("{base}{FLEET_V1}/register");
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .with_context(|| format!("the controller at {base} sent an unreadable registration"));
    }
    let text = response.text().await.unwrap_or_default();
    let message = if serde_json::from_str::<ErrorBody>(&text).is_ok() {
        runway_server::error_message(&text)
    } else {
        format!("{status} from {url}; is {base} a Runway controller?")
    };
    bail!(
        "the controller refused to register front-end {}: {message}",
        hello.name
    )
}

/// Heartbeats, and catches up whenever the committed generation is ahead.
async fn run_agent(
    frontend: Frontend,
    client: ControllerClient,
    join_token: String,
    hello: FrontendHello,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    // Catch up at once, then report.
    catch_up(&frontend, &client).await;
    loop {
        let (generation, ready) = frontend.status();
        match client.heartbeat(generation, ready).await {
            Ok(reply) => {
                if failures > 0 {
                    tracing::info!("the controller answers heartbeats again");
                }
                failures = 0;
                frontend.inner.note_committed(reply.generation);
                if reply.generation > generation || !ready {
                    catch_up(&frontend, &client).await;
                    // Say at once that it caught up.
                    let (generation, ready) = frontend.status();
                    let _ = client.heartbeat(generation, ready).await;
                }
            }
            Err(HeartbeatError::Refused(why)) => {
                tracing::warn!(
                    "the controller no longer knows this front-end ({why}); registering again"
                );
                match register(&client.http, &client.controllers, &join_token, &hello).await {
                    Ok(registered) => client.key.store(Arc::new(registered.key)),
                    Err(e) => tracing::error!("{e:#}"),
                }
            }
            Err(HeartbeatError::Unreachable(why)) => {
                failures += 1;
                // The controller may have recorded a deployment and died
                // before switching this front-end: the catalog says what is
                // committed in its zone, and a front-end behind it stops being ready
                // rather than serve an old generation beside newer ones.
                match frontend.inner.store.zone_generation(&hello.zone).await {
                    Ok(committed) => frontend.inner.note_committed(committed),
                    Err(e) if failures == 1 => {
                        tracing::warn!("cannot read the committed generation either: {e}")
                    }
                    Err(_) => {}
                }
                // Keep serving what is committed; say so once, then now and then.
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(
                        failures,
                        "heartbeat failed: {why}; still serving generation {generation}"
                    );
                }
            }
        }
        // The zone watch: where other zones' apps run is cached for
        // app-to-app calls until a zone changes.
        let calls = frontend.inner.internal.load_full();
        if let Err(e) = calls.watch_zones(&frontend.inner.store).await
            && failures <= 1
        {
            tracing::warn!(
                "cannot read the zones: {e}; app-to-app calls to other zones use what was read before"
            );
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Fetches the committed table and switches to it. Errors are logged; the
/// next heartbeat tries again.
async fn catch_up(frontend: &Frontend, client: &ControllerClient) {
    let table = match client.table().await {
        Ok(table) => table,
        Err(e) => {
            tracing::debug!("cannot fetch the committed table yet: {e}");
            return;
        }
    };
    let (served, ready) = frontend.status();
    if table.generation < served || (table.generation == served && ready) {
        return;
    }
    frontend.inner.note_committed(table.generation);
    let mut staged = frontend.inner.stage_committed(&table).await;
    // A table staged by a deployment that never committed it (its controller
    // died) is newer than the committed one: drop it, it will not come.
    if let Err(StageError::Stale { newest, .. }) = &staged
        && *newest > table.generation
        && frontend.status().0 < *newest
    {
        frontend.abort(*newest).await;
        staged = frontend.inner.stage_committed(&table).await;
    }
    let ok = staged.is_ok();
    frontend
        .inner
        .metrics
        .catchups
        .get_or_create(&crate::metrics::FrontendMetrics::outcome(ok))
        .inc();
    match staged {
        Ok((report, failed)) => match frontend.commit(table.generation).await {
            Ok(()) => {
                tracing::info!(
                    generation = table.generation,
                    fetched_bytes = report.fetched_bytes,
                    failed_apps = failed.len(),
                    "caught up with the committed generation"
                );
                for (app, why) in &failed {
                    let version = table
                        .apps
                        .iter()
                        .find(|a| &a.app == app)
                        .map(|a| a.version.as_str());
                    report_failed_app(frontend, table.generation, app, version, why);
                }
            }
            Err(e) => tracing::warn!("catching up: {e}"),
        },
        Err(e) => tracing::warn!("catching up with generation {}: {e}", table.generation),
    }
}

/// Says, in this process's log and in the app's log rows (`runway logs`),
/// that an app of the committed table could not be loaded on this
/// front-end, which answers it 503 `app_failed` while serving the others.
fn report_failed_app(
    frontend: &Frontend,
    generation: i64,
    app: &str,
    version: Option<&str>,
    why: &str,
) {
    let name = frontend.name();
    tracing::error!(
        generation,
        app,
        "front-end {name} cannot load app {app} of the committed table; it answers it 503 \
         and serves the other apps (a new deployment of the app retries): {why}"
    );
    frontend.inner.log.write(NewLogEntry {
        at_ms: now_ms(),
        kind: LogKind::Error,
        level: LogLevel::Error,
        app: Some(app.to_string()),
        version: version.map(str::to_string),
        frontend: Some(name.to_string()),
        message: Some(format!(
            "front-end {name} could not load this app at generation {generation} and answers it \
             503 app_failed; deploy the app again to retry: {why}"
        )),
        ..Default::default()
    });
}

enum HeartbeatError {
    /// The controller answered 401: the key is stale.
    Refused(String),
    Unreachable(String),
}

impl ControllerClient {
    /// A GET of `path` under the fleet API, to the active controller.
    async fn get(&self, path: &str, timeout: Duration) -> Result<reqwest::Response, String> {
        self.controllers
            .send(|base| {
                self.http
                    .get(format!("{base}{FLEET_V1}/{path}"))
                    .bearer_auth(self.key.load().as_str())
                    .header(FRONTEND_HEADER, &self.name)
                    .timeout(timeout)
            })
            .await
    }

    async fn heartbeat(
        &self,
        generation: i64,
        ready: bool,
    ) -> Result<HeartbeatReply, HeartbeatError> {
        let response = self
            .controllers
            .send(|base| {
                self.http
                    .post(format!("{base}{FLEET_V1}/heartbeat"))
                    .bearer_auth(self.key.load().as_str())
                    .header(FRONTEND_HEADER, &self.name)
                    .json(&Heartbeat { generation, ready })
                    .timeout(Duration::from_secs(5))
            })
            .await
            .map_err(HeartbeatError::Unreachable)?;
        match response.status() {
            s if s.is_success() => response
                .json()
                .await
                .map_err(|e| HeartbeatError::Unreachable(e.to_string())),
            StatusCode::UNAUTHORIZED => Err(HeartbeatError::Refused(
                response.text().await.unwrap_or_default(),
            )),
            s => Err(HeartbeatError::Unreachable(format!(
                "the controller answered {s}"
            ))),
        }
    }

    async fn table(&self) -> Result<RoutingTable, String> {
        let response = self.get("table", Duration::from_secs(30)).await?;
        if !response.status().is_success() {
            return Err(format!("the controller answered {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }
}

/// A farm front-end reads the SMTP settings (password included) from the
/// controller over the fleet channel: only the controller holds the secrets key.
#[async_trait]
impl crate::SmtpSource for ControllerClient {
    async fn smtp(&self) -> Result<Option<runway_api::v1::SmtpDelivery>, String> {
        let response = self
            .get("email-settings", Duration::from_secs(10))
            .await
            .map_err(|e| format!("from the controllers: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the controller answered {} to the email settings: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
        response.json().await.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl ArtifactSource for ControllerClient {
    async fn fetch(&self, kind: BlobKind, digest: &Digest) -> Result<Vec<u8>, String> {
        let path = match kind {
            BlobKind::Package => "packages",
            BlobKind::Artifact => "artifacts",
        };
        let response = self
            .get(&format!("{path}/{digest}"), Duration::from_secs(300))
            .await
            .map_err(|e| format!("from the controllers: {e}"))?;
        let base = self.controllers.base();
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = runway_server::error_message(&text);
            return Err(format!(
                "the controller at {base} answered {status}: {message}"
            ));
        }
        response.bytes().await.map(|b| b.to_vec()).map_err(|e| {
            format!(
                "from the controller at {base}: {}",
                runway_server::error_chain(&e)
            )
        })
    }
}

/// The controller's calls to this front-end, under `/_runway/fleet/v1`.
fn fleet_router(frontend: Frontend, key: KeyCell) -> Router {
    Router::new()
        .route(&format!("{FLEET_V1}/stage"), post(stage))
        .route(&format!("{FLEET_V1}/commit/{{generation}}"), post(commit))
        .route(&format!("{FLEET_V1}/abort/{{generation}}"), post(abort))
        .route_layer(axum::middleware::from_fn_with_state(key, require_key))
        .with_state(frontend)
}

/// Lets through only requests that carry this front-end's current key.
async fn require_key(
    State(key): State<KeyCell>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if authorized(request.headers(), &key) {
        next.run(request).await
    } else {
        fleet_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "only this front-end's controller may stage or commit here (key mismatch)".into(),
        )
    }
}

/// Whether the request carries this front-end's current key.
fn authorized(headers: &HeaderMap, key: &KeyCell) -> bool {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(key.load().as_bytes()))
}

fn fleet_error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(ErrorBody {
            code: code.to_string(),
            message,
            details: serde_json::json!({}),
        }),
    )
        .into_response()
}

async fn stage(State(frontend): State<Frontend>, Json(table): Json<RoutingTable>) -> Response {
    match frontend.stage(&table).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => fleet_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "stage_failed",
            e.to_string(),
        ),
    }
}

async fn commit(State(frontend): State<Frontend>, UrlPath(generation): UrlPath<i64>) -> Response {
    match frontend.commit(generation).await {
        Ok(()) => Json(serde_json::json!({ "generation": generation })).into_response(),
        Err(e) => fleet_error(StatusCode::CONFLICT, "commit_failed", e.to_string()),
    }
}

async fn abort(State(frontend): State<Frontend>, UrlPath(generation): UrlPath<i64>) -> Response {
    frontend.abort(generation).await;
    StatusCode::NO_CONTENT.into_response()
}
