//! `runway console serve`: the console process. Opens (or creates) its
//! catalog and key, creates the admin token and the first administrator
//! user on first start, starts a health
//! poller per registered environment and serves the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use runway_store::{ConsoleStore, SecretsKey};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Console;

/// Everything `runway console serve` can be told.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// `postgres://…` URL, or a directory for the SQLite catalog; default
    /// `<data_dir>/catalog` (where an environment keeps its catalogs too, so
    /// neither can be started on the other's data directory).
    pub database: Option<String>,
    /// Holds `admin.token` (first start) and `console.key` (seals the
    /// environments' credentials), both 0600.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// How often each environment is polled. Default 5 s.
    pub poll_interval: Duration,
    pub connections: runway_server::ConnectionSettings,
    /// Session lifetimes and the login delay.
    pub identity: crate::users::IdentityConfig,
    /// Audit rows older than this are pruned (hourly). Default 365 days.
    pub audit_retention: Duration,
    /// The bearer token `/metrics` requires (`--metrics-token`).
    pub metrics_token: Option<String>,
}

impl ConsoleConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> ConsoleConfig {
        ConsoleConfig {
            database: None,
            data_dir: data_dir.into(),
            listen,
            poll_interval: Duration::from_secs(5),
            connections: runway_server::ConnectionSettings::default(),
            identity: crate::users::IdentityConfig::default(),
            audit_retention: Duration::from_secs(
                u64::from(crate::audit::DEFAULT_RETENTION_DAYS) * 86_400,
            ),
            metrics_token: None,
        }
    }
}

/// A running console.
pub struct ConsoleServer {
    addr: SocketAddr,
    console: Console,
    admin_token: Option<String>,
    admin_password: Option<String>,
    stop: watch::Sender<bool>,
    server: runway_server::ServerTask,
    /// Prunes the audit log past its retention.
    pruner: tokio::task::JoinHandle<()>,
}

impl ConsoleServer {
    pub async fn start(config: ConsoleConfig) -> anyhow::Result<ConsoleServer> {
        if config.poll_interval < Duration::from_millis(100) {
            anyhow::bail!(
                "--poll-ms {} is too short: use at least 100 (default 5000)",
                config.poll_interval.as_millis()
            );
        }
        config.connections.validate().map_err(anyhow::Error::msg)?;
        if config.audit_retention < Duration::from_secs(86_400) {
            anyhow::bail!(
                "--audit-retention-days must be at least 1 (default {})",
                crate::audit::DEFAULT_RETENTION_DAYS
            );
        }
        let data_dir = &config.data_dir;
        runway_store::files::create_private_dir(data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let key = SecretsKey::load(&data_dir.join("console.key"), true)
            .context("failed to load the console key")?;
        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "failed to listen on {} (is another console running? pick another with --listen)",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let database = config
            .database
            .clone()
            .unwrap_or_else(|| data_dir.join("catalog").display().to_string());
        let store = ConsoleStore::open(&database)
            .await
            .context("failed to open the console's catalog (--database)")?;
        if let Err(e) = store.use_key(key).await {
            store.close().await;
            return Err(e).context("failed to unlock the environments' credentials");
        }
        let (token, hash) = crate::auth::new_token();
        let admin_token = match store.ensure_admin(&hash).await {
            Ok(true) => {
                let path = data_dir.join("admin.token");
                runway_store::files::write_atomically(
                    &path,
                    format!("{token}\n").as_bytes(),
                    Some(0o600),
                )
                .with_context(|| format!("failed to write {}", path.display()))?;
                Some(token)
            }
            Ok(false) => None,
            Err(e) => {
                store.close().await;
                return Err(e).context("failed to create the console's admin");
            }
        };
        if let Err(e) = crate::users::prepare_decoy().await {
            store.close().await;
            return Err(e).context("failed to prepare the password hash of unknown users");
        }
        let admin_password = match crate::users::ensure_first_admin(&store).await {
            Ok(password) => password,
            Err(e) => {
                store.close().await;
                return Err(e).context("failed to create the first administrator user");
            }
        };
        let console = Console::with_identity(store.clone(), config.poll_interval, config.identity);
        // The pages' CSRF tokens are derived from the console key (the file
        // `SecretsKey::load` just read or created), so they outlive a restart.
        let key_file = data_dir.join("console.key");
        match std::fs::read(&key_file) {
            Ok(secret) => console.use_csrf_secret(&secret),
            Err(e) => {
                store.close().await;
                return Err(e).with_context(|| format!("failed to read {}", key_file.display()));
            }
        }
        console
            .start_pollers()
            .await
            .context("failed to start the environment pollers")?;
        console
            .recover_plans()
            .await
            .context("failed to resume the plans a previous run left running")?;
        let pruner = tokio::spawn(crate::audit::prune_periodically(
            console.clone(),
            config.audit_retention,
        ));
        let (stop, stopped) = watch::channel(false);
        let (router, registry) = crate::metrics::instrument(crate::router(console.clone()));
        let server = runway_server::spawn_server(
            listener,
            router
                .merge(runway_server::metrics_router(
                    runway_server::metrics::MetricsEndpoint::new(
                        vec![registry],
                        config.metrics_token.clone(),
                    ),
                    runway_server::metrics::CONSOLE_PATH,
                ))
                .merge(crate::web_sso::routes(console.clone())),
            stopped,
            config.connections,
        );
        tracing::info!(%addr, backend = store.backend(), key = store.id(), "console is up");
        Ok(ConsoleServer {
            addr,
            console,
            admin_token,
            admin_password,
            stop,
            server,
            pruner,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn console(&self) -> &Console {
        &self.console
    }

    /// The admin token, if this start created it (shown once).
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The password of the first administrator user ([`crate::users::FIRST_ADMIN_USER`]),
    /// if this start created it (shown once; stored nowhere in the clear).
    pub fn admin_password(&self) -> Option<&str> {
        self.admin_password.as_deref()
    }

    /// Stops accepting, lets requests in flight finish (at most `deadline`),
    /// stops the pollers and closes the catalog.
    pub async fn shutdown(self, deadline: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.console.stop_pollers();
        self.pruner.abort();
        let joined = runway_server::join_servers([self.server], deadline).await;
        self.console.store().close().await;
        joined
    }
}
