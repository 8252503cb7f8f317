//! `runway balancer serve`: the address of a farm environment, or with
//! `--config FILE` a reverse proxy (TLS, routes by host and path), until
//! ctrl-c or SIGTERM. SIGHUP reloads the certificates.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use runway_balancer::{Balancer, BalancerConfig, Discovery, ListenerRole, Policy};

use crate::commands::up::{ConnectionArgs, shutdown_signal};

#[derive(Subcommand, Debug)]
pub enum BalancerCommand {
    /// Forward app traffic to the ready front-ends of a farm.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A reverse-proxy configuration file (TOML: [[listener]], [[certificate]],
    /// [controller], [[route]], [balancer]; see ARCHITECTURE.md). Replaces
    /// --listen, --controller, --upstream, --token and --policy.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["controller", "upstream", "token", "token_file", "pass_api", "listen", "policy", "zone"]
    )]
    pub config: Option<std::path::PathBuf>,
    /// The controller to discover front-ends from, http://host:port. Repeat
    /// it (or separate URLs with commas) to name the standby controllers too:
    /// discovery follows whichever answers, preferring the active one.
    #[arg(
        long,
        env = "RUNWAY_CONTROLLER",
        value_delimiter = ',',
        conflicts_with = "upstream"
    )]
    pub controller: Vec<url::Url>,
    /// The deployment zone whose front-ends this balancer serves (`runway
    /// zone list`): the zone's address is this balancer.
    #[arg(long, default_value = runway_api::v1::GLOBAL_ZONE, requires = "controller")]
    pub zone: String,
    /// An API token (read scope is enough) for the controller.
    #[arg(long, env = "RUNWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding that API token; takes precedence over --token.
    #[arg(long, env = "RUNWAY_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// A fixed front-end instead of discovery (repeat for each).
    #[arg(long, value_name = "URL")]
    pub upstream: Vec<url::Url>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9080")]
    pub listen: SocketAddr,
    /// least-outstanding (fewest requests in flight) or round-robin.
    #[arg(long, default_value = "least-outstanding")]
    pub policy: String,
    /// How often the controller is asked for the front-ends, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub discovery_interval_ms: u64,
    /// How often each front-end's /_runway/ready is checked, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub health_interval_ms: u64,
    /// Consecutive good checks that bring a front-end back.
    #[arg(long, default_value_t = 2)]
    pub health_rise: u32,
    /// Consecutive failed checks that take a front-end out.
    #[arg(long, default_value_t = 2)]
    pub health_fall: u32,
    /// How long a front-end stays out after a failure of its own (connection
    /// refused, timed out, or closed before the request was written), in
    /// milliseconds. A broken answer from one app ejects nothing.
    #[arg(long, default_value_t = 5000)]
    pub eject_ms: u64,
    /// Most of the front-ends that such failures may keep out at once, in
    /// percent (failed health checks are not capped).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub max_ejection_percent: u32,
    /// Tries per idempotent request whose connection failed, the first included.
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Proxy threads (default: one per CPU).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also forward the controller's paths (/_runway/api/… and the
    /// dashboard under /_runway/, all but the front-ends' /_runway/health and
    /// /_runway/ready) to the first --controller, so the environment's API
    /// and dashboard answer at the balancer's address too.
    #[arg(long, requires = "controller")]
    pub pass_api: bool,
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

pub async fn run(cmd: BalancerCommand) -> anyhow::Result<()> {
    match cmd {
        BalancerCommand::Serve(args) => serve(args).await,
    }
}

/// The balancer configuration the flags (or the `--config` file) describe.
pub fn config(args: &ServeArgs) -> anyhow::Result<BalancerConfig> {
    if let Some(path) = &args.config {
        let mut config = runway_balancer::file::load(path)?;
        apply_tuning(&mut config, args)?;
        return Ok(config);
    }
    let discovery = match (args.controller.first(), args.upstream.is_empty()) {
        (Some(url), true) => {
            let from_file = match &args.token_file {
                Some(path) => Some(crate::connection::read_token_file(path, "--token-file")?),
                None => None,
            };
            let Some(token) = from_file
                .as_deref()
                .or(args.token.as_deref())
                .map(str::trim)
                .filter(|t| !t.is_empty())
            else {
                bail!(
                    "--controller needs --token-file PATH or --token (an API token with read scope, e.g. the controller's admin.token)"
                );
            };
            Discovery::Controller {
                url: url.clone(),
                token: token.to_string(),
                interval: Duration::from_millis(args.discovery_interval_ms.max(1)),
            }
        }
        (None, false) => Discovery::Static(args.upstream.clone()),
        (None, true) => bail!(
            "say where the front-ends are: --controller URL --token TOKEN, or --upstream URL (repeated)"
        ),
        (Some(_), false) => unreachable!("clap rejects --controller with --upstream"),
    };
    let mut config = BalancerConfig::new(args.listen, discovery);
    config.policy = args.policy.parse()?;
    apply_tuning(&mut config, args)?;
    if args.pass_api {
        config.platform = args.controller.first().cloned();
    }
    config.standby_controllers = args.controller.iter().skip(1).cloned().collect();
    config.zone = args.zone.clone();
    Ok(config)
}

/// The flags that tune a balancer however it is configured.
fn apply_tuning(config: &mut BalancerConfig, args: &ServeArgs) -> anyhow::Result<()> {
    if let Discovery::Controller { interval, .. } = &mut config.discovery {
        *interval = Duration::from_millis(args.discovery_interval_ms.max(1));
    }
    config.health.interval = Duration::from_millis(args.health_interval_ms);
    config.health.timeout = config
        .health
        .interval
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(100));
    config.health.rise = args.health_rise;
    config.health.fall = args.health_fall;
    config.eject_for = Duration::from_millis(args.eject_ms);
    config.max_ejection_percent = args.max_ejection_percent;
    config.max_attempts = args.max_attempts;
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config.connections = args.connections.settings()?;
    config.metrics_token = args.connections.metrics_token.clone();
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let policy: Policy = config.policy;
    let balancer = Balancer::start(config).await?;
    for (addr, role) in balancer.listeners() {
        let shown = match role {
            ListenerRole::Http => format!("http://{addr}"),
            ListenerRole::Https => format!("https://{addr}"),
            ListenerRole::RedirectToHttps => format!("http://{addr} (redirects to https)"),
        };
        println!("runway: balancer ({policy}) listening on {shown}");
    }
    println!("runway: ctrl-c to stop; SIGHUP reloads the certificates");
    let stopped = shutdown_signal();
    tokio::pin!(stopped);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("failed to listen for SIGHUP")?;
    loop {
        #[cfg(unix)]
        let reload = hangup.recv();
        #[cfg(not(unix))]
        let reload = std::future::pending::<Option<()>>();
        tokio::select! {
            result = &mut stopped => {
                result.context("failed to listen for shutdown signals")?;
                break;
            }
            _ = reload => match balancer.reload_certificates() {
                Ok(Some(count)) => {
                    tracing::info!("reloaded {count} certificate(s)");
                    println!("runway: reloaded {count} certificate(s)");
                }
                Ok(None) => println!("runway: SIGHUP: no certificates to reload"),
                Err(error) => {
                    tracing::error!("certificate reload failed, keeping the certificates in force: {error}");
                    println!("runway: certificate reload failed, keeping the certificates in force: {error}");
                }
            },
        }
    }
    println!("runway: stopping (in-flight requests get up to 30 s)");
    balancer.shutdown().await;
    println!("runway: stopped");
    Ok(())
}
