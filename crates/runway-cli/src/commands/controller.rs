//! `runway controller serve`: the controller of a server farm, until ctrl-c
//! or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use runway_controller::server::{ControllerServer, ServerConfig};

use crate::commands::up::{ConnectionArgs, LimitArgs, shutdown_signal};

#[derive(Subcommand, Debug)]
pub enum ControllerCommand {
    /// Run the controller of a farm: environment API, deployment controller
    /// and fleet endpoints; front-ends register with it.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The environment's name.
    #[arg(long, default_value = "prod")]
    pub name: String,
    /// The catalogs: postgres://user[:password]@host[:port]/database (one
    /// database per environment), or a directory for SQLite files.
    #[arg(long, env = "RUNWAY_DATABASE", hide_env_values = true)]
    pub database: String,
    /// What front-ends are told to open, if it differs (e.g. another host name).
    #[arg(long, hide_env_values = true)]
    pub frontend_database: Option<String>,
    /// Where packages, artifacts, admin.token, join.token, fleet.key and secrets.key live.
    #[arg(long, default_value = "./.runway-controller")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The environment's public URL, usually its balancer's (default: http://<listen address>).
    #[arg(long)]
    pub base_url: Option<String>,
    /// How often front-ends heartbeat, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// A front-end silent this long is offline and leaves the pool, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub offline_after_ms: u64,
    /// How long the controller lease lasts after its last renewal (renewed
    /// every second), in milliseconds. A second controller on the same
    /// database is a standby: it serves reads, refuses writes naming the
    /// active one, and takes over at most this long (plus a second) after
    /// the active one stopped.
    #[arg(long, default_value_t = 5000)]
    pub lease_ms: u64,
    /// The URL front-ends, balancers and the CLI reach this controller at,
    /// recorded in the lease so a standby can name it (default: http://<listen address>).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    /// Key that encrypts secret property values in the catalog (64 hex
    /// digits; must exist) [default: <data-dir>/secrets.key, created on first start].
    #[arg(long, env = "RUNWAY_SECRETS_KEY_FILE", value_name = "PATH")]
    pub secrets_key_file: Option<PathBuf>,
    /// Audit rows older than this many days are deleted (hourly).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

pub async fn run(cmd: ControllerCommand) -> anyhow::Result<()> {
    match cmd {
        ControllerCommand::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ServerConfig::new(&args.name, &args.database, &args.data_dir, args.listen);
    config.frontend_database = args.frontend_database;
    config.base_url = args.base_url;
    config.limits = args.limits.limits();
    config.max_package_bytes = args.limits.max_package_bytes();
    config.runtime = args.limits.runtime();
    config.heartbeat = Duration::from_millis(args.heartbeat_ms);
    config.offline_after = Duration::from_millis(args.offline_after_ms);
    config.log_retention = args.limits.log_retention();
    config.audit_retention = Duration::from_secs(u64::from(args.audit_retention_days) * 86_400);
    config.connections = args.connections.settings()?;
    config.metrics_token = args.connections.metrics_token.clone();
    config.lease_ttl = Duration::from_millis(args.lease_ms);
    config.advertise = args.advertise;
    config.log_limits = args.limits.log_limits();
    config.max_uploads = args.limits.max_uploads as usize;
    config.kv_quota = args.limits.kv_quota();
    config.secrets_key_file = args.secrets_key_file;

    let server = ControllerServer::start(config).await?;
    let role = match server.controller().role() {
        runway_controller::Role::Active => "active".to_string(),
        runway_controller::Role::Standby { holder, address } => {
            format!("standby of {holder} at {address}")
        }
    };
    println!(
        "runway: controller of environment '{}' listening on http://{}",
        args.name,
        server.addr()
    );
    println!("runway: controller id {}: {role}", server.lease_id());
    for (file, created) in [
        ("admin.token", server.admin_token().is_some()),
        ("join.token", server.join_token().is_some()),
    ] {
        let path = args.data_dir.join(file);
        let verb = if created { "written to" } else { "in" };
        println!("runway: {file} {verb} {}", path.display());
    }
    println!("runway: ctrl-c to stop");
    shutdown_signal()
        .await
        .context("failed to listen for shutdown signals")?;
    println!("runway: stopping");
    server.shutdown(Duration::from_secs(30)).await?;
    println!("runway: stopped");
    Ok(())
}
