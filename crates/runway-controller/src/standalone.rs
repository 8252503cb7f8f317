//! `runway up`: a whole environment in one process — controller, one
//! front-end and the catalogs on SQLite — behind one listener.
//!
//! The controller and the front-end still talk only through the fleet
//! protocol (`FrontendLink`); here the link is a direct call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use runway_api::v1::Limits;
use runway_frontend::{DirSource, Frontend, FrontendConfig, FrontendLink};
use runway_runtime::{Runtime, RuntimeConfig};
use runway_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Controller, ControllerConfig};

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
    pub log_retention: Duration,
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
            limits: Limits {
                timeout_ms: 30_000,
                memory_bytes: 128 << 20,
                max_body_bytes: 10 << 20,
            },
            max_package_bytes: 64 << 20,
            max_instances: 1000,
            log_retention: Duration::from_secs(14 * 24 * 3600),
        }
    }

    /// Checks every setting before anything is created or bound.
    pub fn validate(&self) -> anyhow::Result<()> {
        validate_environment_name(&self.environment)?;
        let fe = &self.frontend_name;
        if !crate::fleet::valid_frontend_name(fe) {
            bail!("--frontend-name {fe:?}: use 1 to 63 letters, digits, '-' or '.'");
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("--base-url {url:?}: must start with http:// or https://");
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
        if self.max_instances == 0 {
            bail!("--max-instances must be greater than 0");
        }
        Ok(())
    }
}

/// Environment names: 1 to 63 lowercase letters, digits and '-'.
pub fn validate_environment_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        bail!(
            "--name {name:?}: environment names use 1 to 63 lowercase letters, digits and '-', e.g. dev"
        );
    }
    Ok(())
}

/// A running standalone environment.
pub struct Standalone {
    addr: SocketAddr,
    base_url: String,
    admin_token: Option<String>,
    controller: Controller,
    frontend: Frontend,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    retention: JoinHandle<()>,
}

impl Standalone {
    pub async fn start(config: StandaloneConfig) -> anyhow::Result<Standalone> {
        config.validate()?;
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let store = Store::open_sqlite(&data_dir.join("catalog"))
            .await
            .context("failed to open the catalogs")?;
        let runtime = Runtime::new(RuntimeConfig {
            max_memory_bytes: config.limits.memory_bytes,
            max_instances: config.max_instances,
        })
        .context("failed to start the WebAssembly engine")?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("failed to listen on {} (is another `runway up` running? pick another with --listen)", config.listen))?;
        let addr = listener.local_addr()?;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));

        let frontend = Frontend::new(
            FrontendConfig {
                name: config.frontend_name.clone(),
                cache_dir: data_dir.join("frontend").join("cache"),
                max_package_bytes: config.max_package_bytes,
            },
            runtime.clone(),
            store.clone(),
            Arc::new(DirSource::new(data_dir)),
        )?;
        let link: Arc<dyn FrontendLink> = Arc::new(frontend.clone());
        let controller = Controller::new(
            ControllerConfig {
                environment: config.environment.clone(),
                base_url: base_url.clone(),
                data_dir: data_dir.clone(),
                limits: config.limits,
                max_package_bytes: config.max_package_bytes,
            },
            store.clone(),
            runtime,
            vec![link],
            None,
        )?;
        controller
            .restore()
            .await
            .map_err(|e| anyhow::anyhow!("failed to restore the deployed apps: {e}"))?;
        let admin_token = controller.ensure_admin_token().await?;
        if let Some(token) = &admin_token {
            crate::write_secret(&data_dir.join("admin.token"), token)?;
        }

        let app =
            crate::router(controller.clone()).merge(runway_frontend::router(frontend.clone()));
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        let retention = store.spawn_retention(config.log_retention, Duration::from_secs(3600));
        tracing::info!(%addr, environment = %config.environment, "environment is up");
        Ok(Standalone {
            addr,
            base_url,
            admin_token,
            controller,
            frontend,
            stop,
            server,
            retention,
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

    pub fn frontend(&self) -> &Frontend {
        &self.frontend
    }

    /// Stops accepting, lets requests in flight finish (up to `deadline`),
    /// flushes the log writer and closes the catalogs.
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.retention.abort();
        match tokio::time::timeout(deadline, self.server).await {
            Ok(joined) => joined
                .context("the server task panicked")?
                .context("the server failed")?,
            Err(_) => {
                tracing::warn!("requests still in flight after {deadline:?}; stopping anyway")
            }
        }
        self.controller.store().close().await;
        Ok(())
    }
}
