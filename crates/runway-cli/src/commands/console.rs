//! `runway console serve`: the infrastructure console, until ctrl-c or
//! SIGTERM. `runway console account …`: its service accounts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use runway_console::{ConsoleConfig, ConsoleServer};

use crate::commands::app::print_json;
use crate::commands::login::ConsoleArgs;
use crate::commands::up::{ConnectionArgs, shutdown_signal};

#[derive(Subcommand, Debug)]
pub enum ConsoleCommand {
    /// Run the infrastructure console: environments, pipelines, apps across
    /// environments, deployment plans.
    Serve(ServeArgs),
    /// Service accounts (automation identities) and their tokens.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Rotate the key the console signs environment tokens with; the old key
    /// stays accepted until its tokens expire (10 minutes).
    RotateKey(RotateKeyArgs),
}

#[derive(Args, Debug)]
pub struct RotateKeyArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The console's catalog: postgres://user[:password]@host[:port]/database
    /// (a database no environment uses), or a directory for SQLite
    /// [default: <data-dir>/catalog].
    #[arg(long, env = "RUNWAY_CONSOLE_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Where admin.token (first start) and console.key live (both 0600).
    #[arg(long, default_value = "./.runway-console")]
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// How often each environment's health is polled, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub poll_ms: u64,
    /// Audit rows older than this many days are deleted (hourly).
    #[arg(long, default_value_t = runway_console::audit::DEFAULT_RETENTION_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,
    /// On ctrl-c / SIGTERM: how long requests in flight may finish, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
    #[command(flatten)]
    pub connections: ConnectionArgs,
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create a service account bound to a role; its first token is printed
    /// once (the same as `runway service-account create`).
    Create(crate::commands::service_account::CreateArgs),
    /// List service accounts, their roles and tokens (never the secrets).
    List(crate::commands::service_account::ListArgs),
    /// Add a token to a service account; printed once.
    Token(TokenArgs),
    /// Revoke one token of a service account.
    Revoke(RevokeArgs),
    /// Disable a service account and revoke all its tokens.
    Disable(DisableArgs),
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The account's name or key.
    pub account: String,
    /// A name to recognise the token by.
    #[arg(long, default_value = "token")]
    pub name: String,
    /// Print JSON (including the token) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The account's name or key.
    pub account: String,
    /// The token's id (`runway console account list`).
    pub id: i64,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct DisableArgs {
    /// The account's name or key.
    pub account: String,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub async fn run(cmd: ConsoleCommand) -> anyhow::Result<()> {
    match cmd {
        ConsoleCommand::Serve(args) => serve(args).await,
        ConsoleCommand::Account(cmd) => account(cmd).await,
        ConsoleCommand::RotateKey(args) => rotate_key(args).await,
    }
}

async fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let client = args.console.client()?;
    let keys = client
        .rotate_signing_key()
        .await
        .context("failed to rotate the console's signing key")?;
    if args.json {
        return print_json(&keys);
    }
    println!("new signing key {}", keys.current);
    for key in keys.keys.iter().filter(|k| k.kid != keys.current) {
        if let Some(t) = key.not_after_ms {
            println!(
                "  old key {} stays accepted until {} (its last tokens expire)",
                key.kid,
                crate::output::rfc3339(t)
            );
        }
    }
    if !keys.not_pushed.is_empty() {
        println!(
            "not yet told (unreachable; the health poller retries): {}",
            keys.not_pushed.join(", ")
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = ConsoleConfig::new(&args.data_dir, args.listen);
    config.database = args.database;
    config.poll_interval = Duration::from_millis(args.poll_ms);
    config.audit_retention = Duration::from_secs(u64::from(args.audit_retention_days) * 86_400);
    config.connections = args.connections.settings()?;
    config.metrics_token = args.connections.metrics_token.clone();
    let console = ConsoleServer::start(config).await?;
    println!("runway: console listening on http://{}", console.addr());
    print_admin_token(console.admin_token(), &args.data_dir);
    crate::commands::user::print_first_admin(
        console.admin_password(),
        &format!("http://{}", console.addr()),
    );
    println!("runway: ctrl-c to stop");
    shutdown_signal()
        .await
        .context("failed to listen for shutdown signals")?;
    println!("runway: stopping");
    console
        .shutdown(Duration::from_millis(args.shutdown_grace_ms))
        .await?;
    println!("runway: stopped");
    Ok(())
}

/// Prints the console's admin token if this start created it, else where it is.
pub fn print_admin_token(token: Option<&str>, data_dir: &std::path::Path) {
    let path = data_dir.join("admin.token");
    match token {
        Some(token) => {
            println!(
                "runway: console admin token (shown once, also written to {}):",
                path.display()
            );
            println!("{token}");
        }
        None => println!("runway: console admin token in {}", path.display()),
    }
}

async fn account(cmd: AccountCommand) -> anyhow::Result<()> {
    use crate::commands::service_account;
    match cmd {
        AccountCommand::Create(a) => service_account::create(a).await,
        AccountCommand::List(a) => service_account::list(a).await,
        AccountCommand::Token(a) => {
            let created = a
                .console
                .client()?
                .create_account_token(&a.account, &a.name)
                .await
                .with_context(|| {
                    format!("cannot add a token to service account {:?}", a.account)
                })?;
            crate::commands::service_account::print_token(&created, a.json)
        }
        AccountCommand::Revoke(a) => {
            a.console
                .client()?
                .revoke_account_token(&a.account, a.id)
                .await
                .with_context(|| format!("cannot revoke token {} of {:?}", a.id, a.account))?;
            println!("revoked token {} of service account {}", a.id, a.account);
            Ok(())
        }
        AccountCommand::Disable(a) => {
            a.console
                .client()?
                .disable_service_account(&a.account)
                .await
                .with_context(|| format!("cannot disable service account {:?}", a.account))?;
            println!(
                "disabled service account {} and revoked its tokens",
                a.account
            );
            Ok(())
        }
    }
}
