//! `runway frontend serve|list|enable|disable|remove`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use runway_api::v1::{FrontendFlags, FrontendList};
use runway_frontend::{FrontendNode, NodeConfig};

use crate::commands::app::print_json;
use crate::commands::up::{AdmissionArgs, ConnectionArgs, shutdown_signal};
use crate::connection::Connection;
use crate::output::{Table, relative};

#[derive(Subcommand, Debug)]
pub enum FrontendCommand {
    /// Run a front-end that joins a farm's controller and serves its apps.
    Serve(Box<ServeArgs>),
    /// List the environment's front-ends.
    List(ListArgs),
    /// Take a front-end back into deployments and the balancers' pool.
    Enable(NameArgs),
    /// Drain a front-end: balancers send it no new requests, deployments skip it.
    Disable(NameArgs),
    /// Forget an offline front-end.
    Remove(NameArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The controller's URL, http://host:port. Repeat it (or separate URLs
    /// with commas) to name the standby controllers too: the front-end
    /// follows whichever is active.
    #[arg(
        long,
        env = "RUNWAY_CONTROLLER",
        value_delimiter = ',',
        required = true
    )]
    pub controller: Vec<url::Url>,
    /// A join token (the controller's join.token, or `runway token create NAME --scope join`).
    #[arg(long, env = "RUNWAY_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// File holding the join token (e.g. the controller's join.token); takes precedence over --join-token.
    #[arg(long, env = "RUNWAY_JOIN_TOKEN_FILE", value_name = "PATH")]
    pub join_token_file: Option<PathBuf>,
    /// Where this front-end keeps its identity and its cache of artifacts.
    #[arg(long, default_value = "./.runway-frontend")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub listen: SocketAddr,
    /// URL the controller and balancers reach this front-end at (default: http://<listen address>).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Unique name in the environment (default: the one in --data-dir, else <host>-<port>).
    #[arg(long)]
    pub name: Option<String>,
    /// The deployment zone this front-end joins (`runway zone list`); it loads
    /// only the apps deployed to that zone. Changing it needs a restart.
    #[arg(long, default_value = runway_api::v1::GLOBAL_ZONE)]
    pub zone: String,
    /// PEM CA bundle that the HTTPS addresses of other zones are verified
    /// against, for app-to-app calls (default: the web PKI roots).
    #[arg(long, value_name = "PEM")]
    pub internal_ca: Option<PathBuf>,
    /// The catalogs, if not where the controller says (its --frontend-database).
    #[arg(long, hide_env_values = true)]
    pub database: Option<String>,
    /// Per-instance memory cap bound, in MiB: must equal the controller's.
    #[arg(long, default_value_t = 128)]
    pub memory_mib: u64,
    /// Most instances alive at once (requests in flight).
    #[arg(long, default_value_t = 1000)]
    pub max_instances: u32,
    /// Largest unpacked package accepted, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_package_mib: u64,
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// Do not serve apps (a timers- or email-only front-end).
    #[arg(long)]
    pub no_apps: bool,
    /// Do not run timers.
    #[arg(long)]
    pub no_timers: bool,
    /// Do not send email.
    #[arg(long)]
    pub no_email: bool,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub log_output: crate::commands::up::LogOutputArgs,
    #[command(flatten)]
    pub timers: crate::commands::timer::TimerRunArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// The front-end's name, as `runway frontend list` shows it.
    pub name: String,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(cmd: FrontendCommand) -> anyhow::Result<()> {
    match cmd {
        FrontendCommand::Serve(args) => serve(*args).await,
        FrontendCommand::List(args) => list(args).await,
        FrontendCommand::Enable(args) => {
            args.conn
                .client()
                .await?
                .set_frontend_enabled(&args.name, true)
                .await?;
            println!("enabled front-end {}", args.name);
            Ok(())
        }
        FrontendCommand::Disable(args) => {
            args.conn
                .client()
                .await?
                .set_frontend_enabled(&args.name, false)
                .await?;
            println!(
                "disabled front-end {}: balancers drain it, deployments skip it",
                args.name
            );
            Ok(())
        }
        FrontendCommand::Remove(args) => {
            args.conn
                .client()
                .await?
                .remove_frontend(&args.name)
                .await?;
            println!("removed front-end {}", args.name);
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let join_token = match (&args.join_token, &args.join_token_file) {
        (_, Some(path)) => crate::connection::read_token_file(path, "--join-token-file")?,
        (Some(token), None) => token.clone(),
        (None, None) => anyhow::bail!(
            "no join token: pass --join-token-file PATH (e.g. the controller's join.token) or --join-token"
        ),
    };
    let zone = args.zone.clone();
    let config = NodeConfig {
        controllers: args.controller,
        join_token,
        data_dir: args.data_dir,
        listen: args.listen,
        advertise: args.advertise,
        name: args.name,
        flags: FrontendFlags {
            serves_apps: !args.no_apps,
            runs_timers: !args.no_timers,
            sends_email: !args.no_email,
        },
        database: args.database,
        runtime: args
            .admission
            .runtime(args.memory_mib.saturating_mul(1 << 20), args.max_instances),
        max_package_bytes: args.max_package_mib.saturating_mul(1 << 20),
        connections: args.connections.settings()?,
        metrics_token: args.connections.metrics_token.clone(),
        // The size cap is the controller's to enforce.
        log_limits: args.log_output.log_limits(0),
        timers: args.timers.settings(),
        zone: args.zone,
        internal_ca: args.internal_ca,
    };
    let node = FrontendNode::start(config).await?;
    println!(
        "runway: front-end '{}' (zone {zone}) listening on http://{}",
        node.frontend().name(),
        node.addr()
    );
    println!("runway: ctrl-c to stop");
    shutdown_signal()
        .await
        .context("failed to listen for shutdown signals")?;
    println!("runway: stopping (in-flight requests get up to 30 s)");
    node.shutdown(Duration::from_secs(30)).await?;
    println!("runway: stopped");
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let list = args.conn.client().await?.frontends().await?;
    if args.json {
        return print_json(&list);
    }
    print!("{}", render(&list, runway_store::now_ms()));
    Ok(())
}

/// The `frontend list` table.
pub fn render(list: &FrontendList, now_ms: i64) -> String {
    let mut t = Table::new([
        "NAME",
        "ADDRESS",
        "ZONE",
        "STATE",
        "GENERATION",
        "LAST HEARTBEAT",
        "FLAGS",
    ]);
    for f in &list.frontends {
        let mut flags = Vec::new();
        if f.flags.serves_apps {
            flags.push("apps");
        }
        if f.flags.runs_timers {
            flags.push("timers");
        }
        if f.flags.sends_email {
            flags.push("email");
        }
        t.row([
            f.name.clone(),
            f.address.clone(),
            f.zone.clone(),
            f.state.to_string(),
            f.generation.to_string(),
            f.last_heartbeat_ms
                .map(|at| relative(at, now_ms))
                .unwrap_or_else(|| "in-process".into()),
            flags.join(","),
        ]);
    }
    format!(
        "{}committed generation {}; offline after {} s without a heartbeat\n",
        t.render(),
        list.generation,
        list.offline_after_secs
    )
}
