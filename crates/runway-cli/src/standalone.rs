//! `runway up`: a whole environment in one process — controller, one
//! front-end and the catalogs on SQLite — behind one listener; with
//! `--farm N`, N front-ends on loopback ports behind a balancer at that
//! listener (which also passes `/_runway/api/…` to the controller).
//!
//! Roles are composed here, in the binary, not in a role crate: the
//! controller and the front-ends still talk only through the fleet protocol
//! (`runway_api::fleet::FrontendLink`); here the links are direct calls.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use runway_api::fleet::FrontendLink;
use runway_api::v1::Limits;
use runway_controller::{Controller, ControllerConfig};
use runway_frontend::{DirSource, Frontend, FrontendConfig};
use runway_runtime::{Runtime, RuntimeConfig};
use runway_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything `runway up` can be told.
#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub environment: String,
    /// Defaults to `http://<bound address>`.
    pub base_url: Option<String>,
    pub frontend_name: String,
    pub limits: Limits,
    pub max_package_bytes: u64,
    pub max_instances: u32,
    /// The runtime's admission settings (fair share, memory budget, request
    /// bodies); `None`: [`RuntimeConfig::new`]'s defaults for
    /// `limits.memory_bytes` and `max_instances`. Its memory bound and pool
    /// size are always taken from those two.
    pub runtime: Option<RuntimeConfig>,
    pub log_retention: Duration,
    /// Audit rows older than this are deleted (hourly). Default 365 days.
    pub audit_retention: Duration,
    /// Per-app output limits and the log catalog's size cap.
    pub log_limits: runway_store::LogLimits,
    /// `--max-uploads`: package uploads received at once.
    pub max_uploads: usize,
    /// `--kv-quota-mib`, `--kv-quota-keys`: every app's key-value quota.
    pub kv_quota: runway_store::KvQuota,
    /// `--farm N`: N front-ends on loopback ports behind a balancer at
    /// `listen` (0: one front-end sharing `listen` with the controller).
    pub farm: u32,
    /// Header-read and keep-alive timeouts, connection bound (of every
    /// server of the environment, the `--farm` balancer included).
    pub connections: runway_server::ConnectionSettings,
    /// The key secret property values are encrypted with; default
    /// `<data_dir>/secrets.key`, created on first start.
    pub secrets_key_file: Option<PathBuf>,
    /// How the front-ends run timers (`None`: `--no-timers`).
    pub timers: Option<runway_frontend::TimerSettings>,
    /// The bearer token `/_runway/metrics` requires (`--metrics-token`).
    pub metrics_token: Option<String>,
}

impl StandaloneConfig {
    /// The defaults of `runway up`, with a data dir and listen address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> StandaloneConfig {
        StandaloneConfig {
            data_dir: data_dir.into(),
            listen,
            environment: "dev".into(),
            base_url: None,
            frontend_name: "fe-1".into(),
            limits: runway_controller::DEFAULT_LIMITS,
            max_package_bytes: runway_controller::DEFAULT_MAX_PACKAGE_BYTES,
            max_instances: runway_controller::DEFAULT_MAX_INSTANCES,
            runtime: None,
            log_retention: runway_controller::DEFAULT_LOG_RETENTION,
            audit_retention: runway_store::DEFAULT_AUDIT_RETENTION,
            log_limits: runway_store::LogLimits::default(),
            max_uploads: runway_controller::DEFAULT_MAX_UPLOADS,
            kv_quota: runway_store::KvQuota::DEFAULT,
            farm: 0,
            connections: runway_server::ConnectionSettings::default(),
            secrets_key_file: None,
            timers: Some(runway_frontend::TimerSettings::default()),
            metrics_token: None,
        }
    }

    /// Checks every setting before anything is created or bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        runway_server::validate_environment_name(&self.environment).map_err(anyhow::Error::msg)?;
        self.connections.validate().map_err(anyhow::Error::msg)?;
        let fe = &self.frontend_name;
        if !runway_server::valid_name(fe) {
            bail!("--frontend-name {fe:?}: {}", runway_server::NAME_RULE);
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("--base-url {url:?}: must start with http:// or https://");
        }
        if let Some(url) = &self.base_url {
            runway_server::refuse_credentials("--base-url", url).map_err(anyhow::Error::msg)?;
        }
        if self.limits.timeout_ms == 0 {
            bail!("--timeout-ms must be greater than 0");
        }
        if self.limits.memory_bytes < (1 << 20) {
            bail!("--memory-mib must be at least 1");
        }
        if self.limits.max_body_bytes == 0 {
            bail!("--max-body-bytes must be greater than 0");
        }
        if self.farm > 64 {
            bail!("--farm {}: at most 64 front-ends in one process", self.farm);
        }
        if self.max_instances == 0 {
            bail!("--max-instances must be greater than 0");
        }
        self.runtime_config()
            .validate()
            .map_err(anyhow::Error::msg)?;
        if self.max_uploads == 0 {
            bail!("--max-uploads must be greater than 0");
        }
        Ok(())
    }

    /// The settings of the environment's WebAssembly runtime.
    pub fn runtime_config(&self) -> RuntimeConfig {
        let mut runtime = self
            .runtime
            .unwrap_or_else(|| RuntimeConfig::new(self.limits.memory_bytes, self.max_instances));
        runtime.max_memory_bytes = self.limits.memory_bytes;
        runtime.max_instances = self.max_instances;
        runtime
    }
}

/// A free port for `addr` if it asks for port 0 (the balancer binds it; the
/// controller needs the environment's URL before that).
fn reserve_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    std::net::TcpListener::bind(addr)?.local_addr()
}

/// A running standalone environment.
pub struct Standalone {
    addr: SocketAddr,
    base_url: String,
    admin_token: Option<String>,
    controller: Controller,
    frontends: Vec<Frontend>,
    /// `--farm`: the balancer at the environment's address.
    balancer: Option<runway_balancer::Balancer>,
    stop: watch::Sender<bool>,
    servers: Vec<runway_server::ServerTask>,
    retention: JoinHandle<()>,
    audit_retention: JoinHandle<()>,
    runtime: Runtime,
    timers: Vec<runway_frontend::TimerScheduler>,
}

impl Standalone {
    pub async fn start(config: StandaloneConfig) -> anyhow::Result<Standalone> {
        config.validate()?;
        let data_dir = &config.data_dir;
        runway_store::files::create_private_dir(data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let secrets =
            runway_controller::load_secrets_key(data_dir, config.secrets_key_file.as_deref())?;
        let store = Store::open_sqlite(&data_dir.join("catalog"))
            .await
            .context("failed to open the catalogs")?;
        store.set_log_limits(config.log_limits);
        if let Err(e) = store.use_secrets_key(secrets).await {
            store.close().await;
            return Err(e).context("failed to unlock the secret property values");
        }
        let runtime = Runtime::new(config.runtime_config())
            .context("failed to start the WebAssembly engine")?;

        let listen_error = |addr: SocketAddr| {
            format!(
                "failed to listen on {addr} (is another `runway up` running? pick another with --listen)"
            )
        };
        // One process: the environment's address is the single listener, or
        // with --farm the balancer's (bound last, once front-ends are ready).
        let (main, addr) = if config.farm == 0 {
            let listener = TcpListener::bind(config.listen)
                .await
                .with_context(|| listen_error(config.listen))?;
            let addr = listener.local_addr()?;
            (Some(listener), addr)
        } else {
            (
                None,
                reserve_port(config.listen).with_context(|| listen_error(config.listen))?,
            )
        };
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));

        let names: Vec<String> = if config.farm == 0 {
            vec![config.frontend_name.clone()]
        } else {
            (1..=config.farm).map(|i| format!("fe-{i}")).collect()
        };
        let mut frontends = Vec::new();
        for name in &names {
            let cache = if config.farm == 0 {
                data_dir.join("frontend").join("cache")
            } else {
                data_dir.join("frontends").join(name).join("cache")
            };
            frontends.push(Frontend::new(
                FrontendConfig {
                    name: name.clone(),
                    cache_dir: cache,
                    max_package_bytes: config.max_package_bytes,
                },
                runtime.clone(),
                store.clone(),
                Arc::new(DirSource::new(data_dir)),
            )?);
        }
        let links = frontends
            .iter()
            .map(|f| Arc::new(f.clone()) as Arc<dyn FrontendLink>)
            .collect();
        let controller = Controller::new(
            ControllerConfig {
                environment: config.environment.clone(),
                base_url: base_url.clone(),
                data_dir: data_dir.clone(),
                limits: config.limits,
                max_package_bytes: config.max_package_bytes,
                max_uploads: config.max_uploads,
            },
            store.clone(),
            runtime.clone(),
            links,
            None,
        )?;
        controller
            .restore()
            .await
            .map_err(|e| anyhow::anyhow!("failed to restore the deployed apps: {e}"))?;
        store
            .set_kv_quota(config.kv_quota)
            .await
            .context("failed to record the key-value quota in the platform catalog")?;
        let admin_token = controller.ensure_admin_token().await?;
        if let Some(token) = &admin_token {
            runway_controller::write_secret(&data_dir.join("admin.token"), token)?;
        }

        let (stop, _) = watch::channel(false);
        let serve = |listener: TcpListener, app: axum::Router| {
            runway_server::spawn_server(listener, app, stop.subscribe(), config.connections)
        };
        let mut servers = Vec::new();
        let mut balancer = None;
        let metrics = |registries: Vec<_>| {
            runway_server::metrics_router(
                runway_server::metrics::MetricsEndpoint::new(
                    registries,
                    config.metrics_token.clone(),
                ),
                runway_server::metrics::ENVIRONMENT_PATH,
            )
        };
        match main {
            Some(listener) => {
                let app = runway_controller::router(controller.clone())
                    .merge(metrics(vec![
                        controller.metrics_registry(),
                        frontends[0].metrics_registry(),
                    ]))
                    .merge(runway_frontend::router(frontends[0].clone()));
                servers.push(serve(listener, app));
            }
            None => {
                let loopback: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
                let mut upstreams = Vec::new();
                for frontend in &frontends {
                    let listener = TcpListener::bind(loopback).await?;
                    upstreams.push(url::Url::parse(&format!(
                        "http://{}",
                        listener.local_addr()?
                    ))?);
                    servers.push(serve(
                        listener,
                        runway_frontend::router(frontend.clone())
                            .merge(metrics(vec![frontend.metrics_registry()])),
                    ));
                }
                let listener = TcpListener::bind(loopback).await?;
                let api = url::Url::parse(&format!("http://{}", listener.local_addr()?))?;
                servers.push(serve(
                    listener,
                    runway_controller::router(controller.clone())
                        .merge(metrics(vec![controller.metrics_registry()])),
                ));
                let mut lb = runway_balancer::BalancerConfig::new(
                    addr,
                    runway_balancer::Discovery::Static(upstreams),
                );
                lb.platform = Some(api);
                lb.metrics_token = config.metrics_token.clone();
                lb.shutdown_grace = Duration::from_secs(30);
                lb.connections = config.connections;
                balancer = Some(
                    runway_balancer::Balancer::start(lb)
                        .await
                        .with_context(|| listen_error(addr))?,
                );
            }
        }
        let retention = store.spawn_retention(config.log_retention, Duration::from_secs(3600));
        let audit_retention =
            store.spawn_audit_retention(config.audit_retention, Duration::from_secs(3600));
        // Every front-end runs timers and sends email: the catalog's leases
        // spread the runs. Email settings come from this catalog, opened
        // with the secrets key.
        let timers = match config.timers {
            Some(settings) => {
                let smtp: Arc<dyn runway_frontend::SmtpSource> =
                    Arc::new(runway_frontend::StoreSmtp(store.clone()));
                let mut all: Vec<_> = frontends.iter().map(|f| f.start_timers(settings)).collect();
                all.extend(
                    frontends
                        .iter()
                        .map(|f| f.start_email(settings, smtp.clone())),
                );
                all
            }
            None => Vec::new(),
        };
        tracing::info!(%addr, environment = %config.environment, frontends = frontends.len(), "environment is up");
        Ok(Standalone {
            addr,
            base_url,
            admin_token,
            controller,
            frontends,
            balancer,
            stop,
            servers,
            retention,
            audit_retention,
            runtime,
            timers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The first admin token, if this start created it.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The (first) front-end.
    pub fn frontend(&self) -> &Frontend {
        &self.frontends[0]
    }

    pub fn frontends(&self) -> &[Frontend] {
        &self.frontends
    }

    /// Stops accepting, lets requests in flight finish (up to `deadline`),
    /// flushes the log writer and closes the catalogs.
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        // The balancer first: it stops taking requests and lets its own
        // finish while the front-ends still serve them.
        if let Some(balancer) = self.balancer {
            let _ = tokio::time::timeout(deadline, balancer.shutdown()).await;
        }
        let _ = self.stop.send(true);
        for timers in self.timers {
            timers.stop().await;
        }
        self.retention.abort();
        self.audit_retention.abort();
        let joined = runway_server::join_servers(self.servers, deadline).await;
        // Past the deadline: guests still computing stop at the next epoch
        // tick (the ticker outlives them), so the process can exit.
        self.runtime.interrupt_guests();
        joined?;
        self.controller.store().close().await;
        Ok(())
    }
}
