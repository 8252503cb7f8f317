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
use crate::{Controller, ControllerConfig};

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
        let defaults = crate::standalone::StandaloneConfig::new("", listen);
        ServerConfig {
            environment: environment.to_string(),
            database: database.to_string(),
            frontend_database: None,
            data_dir: data_dir.into(),
            listen,
            base_url: None,
            limits: defaults.limits,
            max_package_bytes: defaults.max_package_bytes,
            runtime: RuntimeConfig {
                max_memory_bytes: defaults.limits.memory_bytes,
                max_instances: defaults.max_instances,
            },
            heartbeat: Duration::from_secs(1),
            offline_after: Duration::from_secs(5),
            log_retention: defaults.log_retention,
            secrets_key_file: None,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        crate::standalone::validate_environment_name(&self.environment)?;
        if self.database.trim().is_empty() {
            bail!("--database is empty: give a postgres://user@host/database URL");
        }
        if self.heartbeat.is_zero() || self.offline_after <= self.heartbeat * 2 {
            bail!(
                "--offline-after-ms must be more than twice --heartbeat-ms \
                 (a front-end may miss one heartbeat without being declared offline)"
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
    server: runway_frontend::ServerTask,
    retention: JoinHandle<()>,
}

impl ControllerServer {
    pub async fn start(config: ServerConfig) -> anyhow::Result<ControllerServer> {
        config.validate()?;
        let data_dir = &config.data_dir;
        runway_store::files::create_private_dir(data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let secrets = crate::load_secrets_key(data_dir, config.secrets_key_file.as_deref())?;
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
            },
            store.clone(),
            runtime,
            Vec::new(),
            Some(farm),
        )?;
        controller
            .restore()
            .await
            .map_err(|e| anyhow::anyhow!("failed to recover unfinished deployments: {e}"))?;
        let admin_token = controller.ensure_admin_token().await?;
        if let Some(token) = &admin_token {
            crate::write_secret(&data_dir.join("admin.token"), token)?;
        }
        let join_token = controller.ensure_join_token().await?;
        if let Some(token) = &join_token {
            crate::write_secret(&data_dir.join("join.token"), token)?;
        }

        let app = crate::router(controller.clone())
            .merge(crate::fleet_router(controller.clone()))
            .fallback(not_an_app_address);
        let (stop, stopped) = watch::channel(false);
        let server = runway_frontend::spawn_server(listener, app, stopped);
        let retention = store.spawn_retention(config.log_retention, Duration::from_secs(3600));
        tracing::info!(%addr, environment = %config.environment, backend = store.backend(), "controller is up");
        Ok(ControllerServer {
            addr,
            controller,
            admin_token,
            join_token,
            stop,
            server,
            retention,
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

    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.retention.abort();
        runway_frontend::join_servers([self.server], deadline).await?;
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
