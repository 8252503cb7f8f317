//! `runway controller serve`: the controller of a farm, in a process of its
//! own, on PostgreSQL (or SQLite) catalogs. Front-ends register with it; it
//! serves the environment API and the fleet endpoints, and owns the
//! deployment controller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use runway_api::v1::Limits;
use runway_runtime::{Runtime, RuntimeConfig};
use runway_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fleet::{FarmConfig, load_or_create_fleet_key};
use crate::{Controller, ControllerConfig, LeaseConfig, Role};

/// Everything `runway controller serve` can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub environment: String,
    /// `postgres://…` URL, or a directory for SQLite catalogs.
    pub database: String,
    /// What front-ends are told to open; defaults to `database`.
    pub frontend_database: Option<String>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The environment's public URL (its balancer); defaults to `http://<listen>`.
    pub base_url: Option<String>,
    pub limits: Limits,
    pub max_package_bytes: u64,
    pub runtime: RuntimeConfig,
    pub heartbeat: Duration,
    pub offline_after: Duration,
    pub log_retention: Duration,
    /// Audit rows older than this are deleted (hourly). Default 365 days.
    pub audit_retention: Duration,
    /// Header-read and keep-alive timeouts, connection bound.
    pub connections: runway_server::ConnectionSettings,
    /// The bearer token `/_runway/metrics` requires (`--metrics-token`).
    pub metrics_token: Option<String>,
    /// How long the controller lease lasts after its last renewal: a standby
    /// takes over at most this (plus a renewal tick) after the active
    /// controller stopped. Default 5 s.
    pub lease_ttl: Duration,
    /// The URL clients reach this controller at, recorded in the lease so a
    /// standby can name it; defaults to `http://<listen address>`.
    pub advertise: Option<String>,
    /// The log catalog's size cap (and output limits of the controller's own writer).
    pub log_limits: runway_store::LogLimits,
    /// `--max-uploads`: package uploads received at once.
    pub max_uploads: usize,
    /// `--kv-quota-mib`, `--kv-quota-keys`: every app's key-value quota.
    pub kv_quota: runway_store::KvQuota,
    /// The key secret property values are encrypted with; default
    /// `<data_dir>/secrets.key`, created on first start. Front-ends never
    /// need it: they receive effective values in the routing table.
    pub secrets_key_file: Option<PathBuf>,
}

impl ServerConfig {
    pub fn new(
        environment: &str,
        database: &str,
        data_dir: impl Into<PathBuf>,
        listen: SocketAddr,
    ) -> ServerConfig {
        ServerConfig {
            environment: environment.to_string(),
            database: database.to_string(),
            frontend_database: None,
            data_dir: data_dir.into(),
            listen,
            base_url: None,
            limits: crate::DEFAULT_LIMITS,
            max_package_bytes: crate::DEFAULT_MAX_PACKAGE_BYTES,
            runtime: RuntimeConfig::new(
                crate::DEFAULT_LIMITS.memory_bytes,
                crate::DEFAULT_MAX_INSTANCES,
            ),
            heartbeat: Duration::from_secs(1),
            offline_after: Duration::from_secs(5),
            log_retention: crate::DEFAULT_LOG_RETENTION,
            audit_retention: runway_store::DEFAULT_AUDIT_RETENTION,
            connections: runway_server::ConnectionSettings::default(),
            metrics_token: None,
            lease_ttl: Duration::from_secs(5),
            advertise: None,
            log_limits: runway_store::LogLimits::default(),
            max_uploads: crate::DEFAULT_MAX_UPLOADS,
            kv_quota: runway_store::KvQuota::DEFAULT,
            secrets_key_file: None,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        runway_server::validate_environment_name(&self.environment).map_err(anyhow::Error::msg)?;
        self.connections.validate().map_err(anyhow::Error::msg)?;
        if let Some(url) = &self.base_url {
            runway_server::refuse_credentials("--base-url", url).map_err(anyhow::Error::msg)?;
        }
        if self.database.trim().is_empty() {
            bail!("--database is empty: give a postgres://user@host/database URL");
        }
        if self.heartbeat.is_zero() || self.offline_after <= self.heartbeat * 2 {
            bail!(
                "--offline-after-ms must be more than twice --heartbeat-ms \
                 (a front-end may miss one heartbeat without being declared offline)"
            );
        }
        if self.lease_ttl < Duration::from_millis(300) {
            bail!(
                "--lease-ms {} is too short: the lease is renewed every second (or every \
                 third of it); use at least 300 (default 5000)",
                self.lease_ttl.as_millis()
            );
        }
        if let Some(advertise) = &self.advertise
            && (!(advertise.starts_with("http://") || advertise.starts_with("https://"))
                || url::Url::parse(advertise).is_err())
        {
            bail!(
                "--advertise {advertise:?} is not an http(s) URL; give the URL front-ends, \
                 balancers and the CLI reach this controller at, e.g. http://10.0.0.5:9000"
            );
        }
        Ok(())
    }
}

/// A running controller.
pub struct ControllerServer {
    addr: SocketAddr,
    controller: Controller,
    admin_token: Option<String>,
    join_token: Option<String>,
    stop: watch::Sender<bool>,
    server: runway_server::ServerTask,
    retention: JoinHandle<()>,
    audit_retention: JoinHandle<()>,
    lease: LeaseConfig,
    lease_stop: watch::Sender<bool>,
    lease_loop: JoinHandle<()>,
}

impl ControllerServer {
    pub async fn start(config: ServerConfig) -> anyhow::Result<ControllerServer> {
        config.validate()?;
        let data_dir = &config.data_dir;
        runway_store::files::create_private_dir(data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "failed to listen on {} (is another controller running? pick another with --listen)",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let store = Store::open(&config.database)
            .await
            .context("failed to open the catalogs (--database)")?;
        store.set_log_limits(config.log_limits);
        // Only once the catalogs opened: a controller pointed at a wrong
        // database must not leave a new key behind for the next start.
        let secrets = match crate::load_secrets_key(data_dir, config.secrets_key_file.as_deref()) {
            Ok(secrets) => secrets,
            Err(e) => {
                store.close().await;
                return Err(e);
            }
        };
        if let Err(e) = store.use_secrets_key(secrets).await {
            store.close().await;
            return Err(e).context("failed to unlock the secret property values");
        }
        let runtime =
            Runtime::new(config.runtime).context("failed to start the WebAssembly engine")?;
        let fleet_key = load_or_create_fleet_key(data_dir)?;
        let mut farm = FarmConfig::new(
            config
                .frontend_database
                .clone()
                .unwrap_or_else(|| config.database.clone()),
            fleet_key,
        );
        farm.heartbeat = config.heartbeat;
        farm.offline_after = config.offline_after;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let controller = Controller::new(
            ControllerConfig {
                environment: config.environment.clone(),
                base_url,
                data_dir: data_dir.clone(),
                limits: config.limits,
                max_package_bytes: config.max_package_bytes,
                max_uploads: config.max_uploads,
            },
            store.clone(),
            runtime,
            Vec::new(),
            Some(farm),
        )?;
        // Active or standby: decided before anything is served. Taking the
        // lease recovers what a previous holder left unfinished.
        let lease = LeaseConfig::new(
            crate::lease::new_holder_id(),
            config
                .advertise
                .clone()
                .unwrap_or_else(|| format!("http://{addr}")),
            config.lease_ttl,
        );
        let role = controller
            .campaign_once(&lease)
            .await
            .context("failed to take part in the controller lease (--database)")?;
        let (mut admin_token, mut join_token) = (None, None);
        if role == Role::Active {
            // Kept in the catalog: every front-end of the farm applies the same quota.
            store
                .set_kv_quota(config.kv_quota)
                .await
                .context("failed to record the key-value quota in the platform catalog")?;
            admin_token = controller.ensure_admin_token().await?;
            if let Some(token) = &admin_token {
                crate::write_secret(&data_dir.join("admin.token"), token)?;
            }
            join_token = controller.ensure_join_token().await?;
            if let Some(token) = &join_token {
                crate::write_secret(&data_dir.join("join.token"), token)?;
            }
        }

        let app = crate::router(controller.clone())
            .merge(crate::fleet_router(controller.clone()))
            .merge(runway_server::metrics_router(
                runway_server::metrics::MetricsEndpoint::new(
                    vec![controller.metrics_registry()],
                    config.metrics_token.clone(),
                ),
                runway_server::metrics::ENVIRONMENT_PATH,
            ))
            .fallback(not_an_app_address);
        let (stop, stopped) = watch::channel(false);
        let (lease_stop, lease_stopped) = watch::channel(false);
        let lease_loop = controller.spawn_lease_loop(lease.clone(), lease_stopped);
        let server = runway_server::spawn_server(listener, app, stopped, config.connections);
        let retention = store.spawn_retention(config.log_retention, Duration::from_secs(3600));
        let audit_retention =
            store.spawn_audit_retention(config.audit_retention, Duration::from_secs(3600));
        tracing::info!(
            %addr,
            environment = %config.environment,
            backend = store.backend(),
            id = %lease.id,
            ?role,
            "controller is up"
        );
        Ok(ControllerServer {
            addr,
            controller,
            admin_token,
            join_token,
            stop,
            server,
            retention,
            audit_retention,
            lease,
            lease_stop,
            lease_loop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The first admin token, if this start created it.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The first join token, if this start created it.
    pub fn join_token(&self) -> Option<&str> {
        self.join_token.as_deref()
    }

    /// This controller's id in the lease row.
    pub fn lease_id(&self) -> &str {
        &self.lease.id
    }

    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.retention.abort();
        self.audit_retention.abort();
        // Requests in flight (a deployment among them) finish under the lease.
        let joined = runway_server::join_servers([self.server], deadline).await;
        let _ = self.lease_stop.send(true);
        let _ = self.lease_loop.await;
        // A standby may take over at once.
        self.controller.release_lease(&self.lease).await;
        joined?;
        self.controller.store().close().await;
        Ok(())
    }
}

/// App traffic sent to the controller instead of the balancer.
async fn not_an_app_address(uri: http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::not_found(format!(
        "{} is not served here: this is the controller; apps are served by the front-ends, \
         through `runway balancer serve`",
        uri.path()
    ))
}
