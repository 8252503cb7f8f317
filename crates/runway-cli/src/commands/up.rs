//! `runway up`: the typical infrastructure of the seeds on the embedded
//! default (SQLite), until ctrl-c or SIGTERM — the console plus dev, test and
//! prod (prod a farm of 2 front-ends behind a balancer) in pipeline `main`
//! (see `infra`). `runway up --single`: one standalone environment.

pub mod infra;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::standalone::{Standalone, StandaloneConfig};
use anyhow::Context;
use runway_api::v1::Limits;
use runway_runtime::RuntimeConfig;

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// One environment (controller and front-end) instead of the whole
    /// infrastructure; the flags marked "--single" need it.
    #[arg(long)]
    pub single: bool,
    /// Where the catalogs, packages and artifacts live (the infrastructure:
    /// one subdirectory per role, console/, dev/, test/, prod/).
    #[arg(long, env = "RUNWAY_DATA_DIR", default_value = "./.runway")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (the bound address is
    /// printed). The infrastructure: the console's; dev, test and prod take
    /// the next three ports (or free ports with 0).
    #[arg(long, env = "RUNWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// --single: the environment's name [default: dev].
    #[arg(long)]
    pub name: Option<String>,
    /// --single: base URL for absolute URLs the platform generates (default: http://<listen address>).
    #[arg(long)]
    pub base_url: Option<String>,
    /// --single: name of the built-in front-end (sent as x-runway-frontend) [default: fe-1].
    #[arg(long)]
    pub frontend_name: Option<String>,
    /// --single: run N front-ends on loopback ports behind a balancer at --listen
    /// (a server farm in one process; 0 = one front-end on --listen) [default: 0].
    #[arg(long, value_name = "N")]
    pub farm: Option<u32>,
    /// The infrastructure: how often the console polls each environment, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub console_poll_ms: u64,
    /// Audit rows older than this many days are deleted (hourly): the
    /// console's and each environment's.
    #[arg(long, default_value_t = runway_console::audit::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,
    /// On ctrl-c / SIGTERM: how long in-flight requests may finish, in
    /// milliseconds; guests still running then are stopped.
    #[arg(long, default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    /// --single: key that encrypts secret property values in the catalog (64 hex
    /// digits; must exist) [default: <data-dir>/secrets.key, created on first start].
    #[arg(long, env = "RUNWAY_SECRETS_KEY_FILE", value_name = "PATH")]
    pub secrets_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Do not run timers (the front-ends of every environment).
    #[arg(long)]
    pub no_timers: bool,
    #[command(flatten)]
    pub timers: crate::commands::timer::TimerRunArgs,
}

/// Client connections of a server (`up`, `controller serve`, `frontend
/// serve`, `balancer serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionArgs {
    /// A client must send a complete request head within this long (of its
    /// first byte, or of connecting), in milliseconds; else it is disconnected.
    #[arg(long, default_value_t = runway_server::ConnectionSettings::default().header_read_timeout.as_millis() as u64)]
    pub header_read_timeout_ms: u64,
    /// A kept-alive connection idle this long is closed, in milliseconds.
    #[arg(long, default_value_t = runway_server::ConnectionSettings::default().keep_alive_timeout.as_millis() as u64)]
    pub keep_alive_timeout_ms: u64,
    /// Most client connections open at once; at the bound the connection
    /// idle longest is closed to make room, and if all are busy the newcomer
    /// gets 503 (also kept below the open-file limit, which is raised to its
    /// hard limit at start).
    #[arg(long, default_value_t = runway_server::ConnectionSettings::default().max_connections)]
    pub max_connections: usize,
    /// A connection whose response writes make no progress this long (the
    /// client stopped reading) is closed and its guest stopped, in
    /// milliseconds (nginx's send_timeout).
    #[arg(long, default_value_t = runway_server::ConnectionSettings::default().send_timeout.as_millis() as u64)]
    pub send_timeout_ms: u64,
    /// Require `Authorization: Bearer TOKEN` on the server's Prometheus
    /// metrics (`/_runway/metrics`; the console's `/metrics`); without it
    /// they are open to whoever reaches the address.
    #[arg(long, env = "RUNWAY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl ConnectionArgs {
    pub fn settings(&self) -> anyhow::Result<runway_server::ConnectionSettings> {
        runway_server::ConnectionSettings::from_flags(
            self.header_read_timeout_ms,
            self.keep_alive_timeout_ms,
            self.max_connections,
            self.send_timeout_ms,
        )
        .map_err(anyhow::Error::msg)
    }
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
    /// Size cap of the log catalog, in MiB: beyond it the oldest rows are
    /// deleted (checked every 30 s; 0 = no cap).
    #[arg(long, default_value_t = 1024)]
    pub log_max_mib: u64,
    #[command(flatten)]
    pub log_output: LogOutputArgs,
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// Most package uploads received at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_uploads: u32,
    /// Key-value quota of each app, in MiB of keys and values (all buckets).
    #[arg(long, default_value_t = 100)]
    pub kv_quota_mib: u64,
    /// Key-value quota of each app, in keys (all buckets).
    #[arg(long, default_value_t = 100_000)]
    pub kv_quota_keys: u64,
}

/// Per-app output limits of the log writer, shared by `up`, `controller serve`
/// and `frontend serve` (in a farm, the front-ends' apply).
#[derive(clap::Args, Debug, Clone)]
pub struct LogOutputArgs {
    /// Lines of stdout/stderr logged per second per app (bursts of 5 s worth
    /// pass); beyond it lines are dropped and a marker row says how many (0 = no limit).
    #[arg(long, default_value_t = runway_store::LogLimits::DEFAULT_OUTPUT_LINES_PER_SEC)]
    pub log_output_lines_per_sec: u64,
    /// KiB of stdout/stderr logged per second per app (bursts of 5 s worth
    /// pass); beyond it lines are dropped and a marker row says how many (0 = no limit).
    #[arg(long, default_value_t = runway_store::LogLimits::DEFAULT_OUTPUT_BYTES_PER_SEC / 1024)]
    pub log_output_kib_per_sec: u64,
}

impl LogOutputArgs {
    /// The limits, with the catalog's size cap `max_bytes`.
    pub fn log_limits(&self, max_bytes: u64) -> runway_store::LogLimits {
        runway_store::LogLimits {
            output_lines_per_sec: self.log_output_lines_per_sec,
            output_bytes_per_sec: self.log_output_kib_per_sec.saturating_mul(1024),
            max_bytes,
        }
    }
}

/// How a front-end admits requests: fair share between apps, the memory
/// budget, and request bodies (shared by `up`, `controller serve` and
/// `frontend serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct AdmissionArgs {
    /// Most requests of one app in flight at once; an app's runway.toml
    /// `[limits] concurrency` may narrow it; beyond it the app gets 503
    /// [default: half of --max-instances, at least 1].
    #[arg(long, value_name = "N")]
    pub app_concurrency: Option<u32>,
    /// Most guests of one app (with the app-to-app calls its requests
    /// cause) competing for the CPU at once; the others wait for a turn
    /// (10 ms slices), so one busy app cannot crowd out the others
    /// [default: the number of executor threads, i.e. of cores].
    #[arg(long, value_name = "N")]
    pub app_cpu_slots: Option<u32>,
    /// Bound on the sum of the memory caps of the instances alive at once, in
    /// MiB; one app may use at most half of it; beyond it requests wait up to
    /// 5 s, then get 503 [default: half of the machine's memory (MemTotal)].
    #[arg(long, value_name = "MIB")]
    pub memory_budget_mib: Option<u64>,
    /// How long a client may take to send a request body, in milliseconds;
    /// bodies are read before an instance is taken; a slower one gets 408.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,
    /// Bound on the request-body bytes buffered at once, in MiB; beyond it
    /// requests with a body get 503.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub body_buffer_mib: u64,
}

impl AdmissionArgs {
    /// The runtime settings for these flags, a per-instance memory bound and
    /// an instance pool size.
    pub fn runtime(&self, max_memory_bytes: u64, max_instances: u32) -> RuntimeConfig {
        let mut config = RuntimeConfig::new(max_memory_bytes, max_instances);
        if let Some(n) = self.app_concurrency {
            config.app_concurrency = n;
        }
        if let Some(n) = self.app_cpu_slots {
            config.app_cpu_slots = n;
        }
        if let Some(mib) = self.memory_budget_mib {
            config.memory_budget_bytes = mib.saturating_mul(1 << 20);
        }
        config.body_read_timeout = Duration::from_millis(self.body_read_timeout_ms);
        config.body_buffer_bytes = self.body_buffer_mib.saturating_mul(1 << 20);
        config
    }
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout_ms: self.timeout_ms,
            memory_bytes: self.memory_mib.saturating_mul(1 << 20),
            max_body_bytes: self.max_body_bytes,
            concurrency: None,
        }
    }

    pub fn max_package_bytes(&self) -> u64 {
        self.max_package_mib.saturating_mul(1 << 20)
    }

    pub fn log_limits(&self) -> runway_store::LogLimits {
        self.log_output
            .log_limits(self.log_max_mib.saturating_mul(1 << 20))
    }

    /// The runtime settings of these bounds.
    pub fn runtime(&self) -> RuntimeConfig {
        self.admission
            .runtime(self.memory_mib.saturating_mul(1 << 20), self.max_instances)
    }

    pub fn kv_quota(&self) -> runway_store::KvQuota {
        runway_store::KvQuota {
            max_bytes: self.kv_quota_mib.saturating_mul(1 << 20),
            max_keys: self.kv_quota_keys,
        }
    }

    pub fn log_retention(&self) -> Duration {
        Duration::from_secs(self.log_retention_days.saturating_mul(24 * 3600))
    }
}

/// The configuration of one environment with `args`' bounds and connections.
pub fn standalone_config(
    args: &UpArgs,
    data_dir: &std::path::Path,
    listen: SocketAddr,
) -> anyhow::Result<StandaloneConfig> {
    let mut config = StandaloneConfig::new(data_dir, listen);
    config.limits = args.limits.limits();
    config.max_package_bytes = args.limits.max_package_bytes();
    config.max_instances = args.limits.max_instances;
    config.runtime = Some(args.limits.runtime());
    config.log_retention = args.limits.log_retention();
    config.audit_retention = Duration::from_secs(u64::from(args.audit_retention_days) * 86_400);
    config.log_limits = args.limits.log_limits();
    config.max_uploads = args.limits.max_uploads as usize;
    config.kv_quota = args.limits.kv_quota();
    config.connections = args.connections.settings()?;
    config.metrics_token = args.connections.metrics_token.clone();
    config.timers = (!args.no_timers).then(|| args.timers.settings());
    Ok(config)
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    if !args.single {
        return infra::run(args).await;
    }
    let mut config = standalone_config(&args, &args.data_dir, args.listen)?;
    config.environment = args.name.clone().unwrap_or_else(|| "dev".into());
    config.base_url = args.base_url.clone();
    config.frontend_name = args.frontend_name.clone().unwrap_or_else(|| "fe-1".into());
    config.farm = args.farm.unwrap_or(0);
    config.secrets_key_file = args.secrets_key_file.clone();

    let environment = Standalone::start(config).await?;
    println!(
        "runway: environment '{}' listening on http://{}",
        environment.controller().config().environment,
        environment.addr()
    );
    if args.farm.unwrap_or(0) > 0 {
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
    let grace = Duration::from_millis(args.shutdown_grace_ms);
    println!(
        "runway: stopping (in-flight requests get up to {} ms)",
        grace.as_millis()
    );
    environment.shutdown(grace).await?;
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
