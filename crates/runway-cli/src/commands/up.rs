//! `runway up`: a standalone environment on the embedded default (SQLite),
//! until ctrl-c or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use runway_api::v1::Limits;
use runway_controller::standalone::{Standalone, StandaloneConfig};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Where the catalogs, packages and artifacts live.
    #[arg(long, env = "RUNWAY_DATA_DIR", default_value = "./.runway")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "RUNWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The environment's name.
    #[arg(long, default_value = "dev")]
    pub name: String,
    /// Base URL for absolute URLs the platform generates (default: http://<listen address>).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Name of the built-in front-end (sent as x-runway-frontend).
    #[arg(long, default_value = "fe-1")]
    pub frontend_name: String,
    /// Run N front-ends on loopback ports behind a balancer at --listen
    /// (a server farm in one process; 0 = one front-end on --listen).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub farm: u32,
    /// Key that encrypts secret property values in the catalog (64 hex
    /// digits; must exist) [default: <data-dir>/secrets.key, created on first start].
    #[arg(long, env = "RUNWAY_SECRETS_KEY_FILE", value_name = "PATH")]
    pub secrets_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Environment-wide bounds, shared by `up` and `controller serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Per-request wall-clock deadline bound, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Per-instance memory cap bound, in MiB (front-ends must use the same).
    #[arg(long, default_value_t = 128)]
    pub memory_mib: u64,
    /// Request body cap bound, in bytes.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Largest package accepted by publish, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_package_mib: u64,
    /// Most instances alive at once (requests in flight).
    #[arg(long, default_value_t = 1000)]
    pub max_instances: u32,
    /// How long log rows are kept, in days.
    #[arg(long, default_value_t = 14)]
    pub log_retention_days: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout_ms: self.timeout_ms,
            memory_bytes: self.memory_mib.saturating_mul(1 << 20),
            max_body_bytes: self.max_body_bytes,
        }
    }

    pub fn max_package_bytes(&self) -> u64 {
        self.max_package_mib.saturating_mul(1 << 20)
    }

    pub fn log_retention(&self) -> Duration {
        Duration::from_secs(self.log_retention_days.saturating_mul(24 * 3600))
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let mut config = StandaloneConfig::new(&args.data_dir, args.listen);
    config.environment = args.name;
    config.base_url = args.base_url;
    config.frontend_name = args.frontend_name;
    config.limits = args.limits.limits();
    config.max_package_bytes = args.limits.max_package_bytes();
    config.max_instances = args.limits.max_instances;
    config.log_retention = args.limits.log_retention();
    config.farm = args.farm;
    config.secrets_key_file = args.secrets_key_file;

    let environment = Standalone::start(config).await?;
    println!(
        "runway: environment '{}' listening on http://{}",
        environment.controller().config().environment,
        environment.addr()
    );
    if args.farm > 0 {
        println!(
            "runway: {} front-ends behind the balancer at http://{}",
            environment.frontends().len(),
            environment.addr()
        );
    }
    println!("runway: data in {}", args.data_dir.display());
    match environment.admin_token() {
        Some(token) => {
            let path = args.data_dir.join("admin.token");
            println!(
                "runway: admin token (shown once, also written to {}):",
                path.display()
            );
            println!("{token}");
        }
        None => println!(
            "runway: admin token in {}",
            args.data_dir.join("admin.token").display()
        ),
    }
    println!("runway: ctrl-c to stop");

    shutdown_signal()
        .await
        .context("failed to listen for shutdown signals")?;
    println!("runway: stopping (in-flight requests get up to 30 s)");
    environment.shutdown(Duration::from_secs(30)).await?;
    println!("runway: stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}
