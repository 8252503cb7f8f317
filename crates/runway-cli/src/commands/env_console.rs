//! `runway env add|list|show|remove`: environments registered on the console.

use anyhow::{Context, bail};
use clap::Args;
use runway_api::console::{AddEnvironment, EnvironmentView, HealthView, RemoveEnvironment};
use runway_api::v1::FrontendState;

use crate::commands::app::print_json;
use crate::commands::env::EnvCommand;
use crate::commands::login::ConsoleArgs;
use crate::connection::read_token_file;
use crate::output::{Table, ago, fields, or_dash, rfc3339, short_digest};

#[derive(Args, Debug)]
pub struct AddArgs {
    /// A name for the environment on the console, e.g. dev, test, prod.
    pub name: String,
    /// The environment's address (its balancer in a farm), https://host[:port].
    pub url: String,
    /// An admin token of the environment: used once to mint the console's own
    /// token there, never stored.
    #[arg(long, env = "RUNWAY_ENV_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding that admin token (keeps it out of `ps`); takes precedence over --token.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    /// The pipeline to place it in (created with `runway pipeline add`).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Its place in the pipeline, 1 = first stage [default: after the last].
    #[arg(long, value_name = "N")]
    pub order: Option<i64>,
    /// Accept a plain-http address that is not loopback (the console's token
    /// then crosses the network in clear).
    #[arg(long)]
    pub allow_insecure: bool,
    /// Plans to this environment stop after prepare until continued.
    #[arg(long)]
    pub two_step: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The environment's name or key.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The environment's name or key.
    pub name: String,
    /// Remove it even when the console cannot revoke its token on the
    /// environment (unreachable); the token then stays there until revoked.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub async fn run(cmd: EnvCommand) -> anyhow::Result<()> {
    match cmd {
        EnvCommand::Add(a) => add(a).await,
        EnvCommand::List(a) => list(a).await,
        EnvCommand::Show(a) => show(a).await,
        EnvCommand::Remove(a) => remove(a).await,
        EnvCommand::Set(a) => crate::commands::env::set(a).await,
    }
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    let token = match (&args.token_file, &args.token) {
        (Some(path), _) => read_token_file(path, "--token-file")?,
        (None, Some(t)) if !t.trim().is_empty() => t.trim().to_string(),
        _ => bail!(
            "give an admin token of environment {:?} with --token TOKEN or --token-file PATH \
             (its data dir's admin.token); the console uses it once and does not keep it",
            args.name
        ),
    };
    let console = args.console.client()?;
    let env = console
        .add_environment(&AddEnvironment {
            name: args.name.clone(),
            address: args.url.clone(),
            token,
            pipeline: args.pipeline.clone(),
            order: args.order,
            allow_insecure: args.allow_insecure,
            two_step: args.two_step,
        })
        .await
        .with_context(|| format!("cannot add environment {:?}", args.name))?;
    if args.json {
        return print_json(&env);
    }
    println!(
        "added environment {} ({}) at {}{}; health: {}",
        env.name,
        env.key,
        env.address,
        match (&env.pipeline, env.order) {
            (Some(p), Some(n)) => format!(", pipeline {p} #{n}"),
            _ => String::new(),
        },
        health_word(env.health.as_ref())
    );
    Ok(())
}

/// `ok`, `unreachable` or `unknown` (not polled yet).
pub fn health_word(h: Option<&HealthView>) -> String {
    match h {
        None => "unknown".into(),
        Some(h) if h.reachable => "ok".into(),
        Some(_) => "unreachable".into(),
    }
}

/// `2/2 ready`, or `-`.
fn frontends_summary(h: Option<&HealthView>) -> String {
    match h {
        Some(h) if !h.frontends.is_empty() => {
            let ready = h
                .frontends
                .iter()
                .filter(|f| f.state == FrontendState::Ready)
                .count();
            format!("{ready}/{} ready", h.frontends.len())
        }
        _ => "-".into(),
    }
}

pub fn render_list(envs: &[EnvironmentView]) -> String {
    let mut t = Table::new([
        "NAME",
        "ADDRESS",
        "PIPELINE",
        "ORDER",
        "HEALTH",
        "FRONT-ENDS",
        "GENERATION",
        "LAST SEEN",
    ]);
    for e in envs {
        let h = e.health.as_ref();
        t.row([
            e.name.clone(),
            e.address.clone(),
            or_dash(e.pipeline.as_deref()),
            e.order.map_or("-".into(), |n| n.to_string()),
            health_word(h),
            frontends_summary(h),
            h.and_then(|h| h.generation)
                .map_or("-".into(), |g| g.to_string()),
            h.and_then(|h| h.last_seen_at_ms)
                .map_or("never".into(), |t| ago(Some(t))),
        ]);
    }
    t.render()
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let envs = args.console.client()?.environments().await?;
    if args.json {
        return print_json(&envs);
    }
    if envs.is_empty() {
        println!("no environments; register one with `runway env add NAME URL --token …`");
        return Ok(());
    }
    print!("{}", render_list(&envs));
    Ok(())
}

async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let detail = args.console.client()?.environment(&args.name).await?;
    if args.json {
        return print_json(&detail);
    }
    let e = &detail.environment;
    let h = e.health.as_ref();
    let mut out = fields(&[
        ("name", e.name.clone()),
        ("key", e.key.clone()),
        ("address", e.address.clone()),
        (
            "pipeline",
            match (&e.pipeline, e.order) {
                (Some(p), Some(n)) => format!("{p} (#{n})"),
                _ => "-".into(),
            },
        ),
        (
            "two-step plans",
            if e.two_step { "yes" } else { "no" }.into(),
        ),
        ("health", health_word(h)),
        (
            "error",
            or_dash(h.and_then(|h| {
                if h.reachable {
                    None
                } else {
                    h.error.as_deref()
                }
            })),
        ),
        (
            "runway",
            or_dash(h.and_then(|h| h.runway_version.as_deref())),
        ),
        (
            "generation",
            h.and_then(|h| h.generation)
                .map_or("-".into(), |g| g.to_string()),
        ),
        (
            "last seen",
            h.and_then(|h| h.last_seen_at_ms)
                .map_or("never".into(), rfc3339),
        ),
    ]);
    out.push('\n');
    match h {
        Some(h) if !h.frontends.is_empty() => {
            out.push_str("front-ends:\n");
            let mut t = Table::new(["NAME", "ADDRESS", "STATE", "GENERATION"]);
            for f in &h.frontends {
                t.row([
                    f.name.clone(),
                    f.address.clone(),
                    f.state.to_string(),
                    f.generation.to_string(),
                ]);
            }
            out.push_str(&t.render());
        }
        _ => out.push_str("front-ends: none seen\n"),
    }
    if detail.apps.is_empty() {
        out.push_str("apps: none\n");
    } else {
        out.push_str("apps:\n");
        let mut t = Table::new(["APP", "VERSION", "STATUS", "DIGEST", "VERSION KEY"]);
        for a in &detail.apps {
            t.row([
                a.app.clone(),
                or_dash(a.version.as_deref()),
                a.status.to_string(),
                a.digest.as_deref().map_or("-".into(), short_digest),
                or_dash(a.version_key.as_deref()),
            ]);
        }
        out.push_str(&t.render());
    }
    print!("{out}");
    Ok(())
}

async fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let console = args.console.client()?;
    let env = console.environment(&args.name).await?;
    console
        .remove_environment(
            &env.environment.key,
            &RemoveEnvironment { force: args.force },
        )
        .await
        .with_context(|| format!("cannot remove environment {:?}", args.name))?;
    let info = console.info().await?;
    println!(
        "removed environment {} from the console and gave back its token console:{} \
         (with --force, when the environment did not answer, the token stays there until \
         revoked: `runway token revoke console:{} --env {}`)",
        env.environment.name, info.key, info.key, env.environment.address
    );
    Ok(())
}
