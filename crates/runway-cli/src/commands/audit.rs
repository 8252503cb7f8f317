//! `runway audit [--user U] [--env E] [--app A] [--action TEXT] [--since T]
//! [--until T] [--limit N] [--json]`: the console's audit log, newest first;
//! `--json` prints JSON lines (one row per line), the export format.
//! `runway audit --source env --env E …`: environment E's own audit log
//! (actions taken there, refusals included), with the same filters, read
//! with the credentials `runway logs --env E` uses (a console-issued token
//! needs full control on E; or `--token`/`--token-file` of E).

use std::io::Write as _;

use clap::Args;
use runway_api::console::identity::{AuditEntry, AuditQuery};

use crate::commands::login::ConsoleArgs;
use crate::commands::logs::parse_time;
use crate::output::{Table, rfc3339};

/// Whose audit log `runway audit` reads.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The console's: every change and refusal through the console.
    #[default]
    Console,
    /// The environment named by --env: every change and refusal of calls
    /// made straight to it.
    Env,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Whose log: the console's, or (with --env) an environment's own.
    #[arg(long, value_enum, default_value_t = Source::Console)]
    pub source: Source,
    /// Only rows of this user or service account.
    #[arg(long)]
    pub user: Option<String>,
    /// Only rows about this environment (with --source env: the
    /// environment whose log is read, a name registered on the console or a URL).
    #[arg(long)]
    pub env: Option<String>,
    /// Only rows about this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Only rows whose action contains this text (e.g. plans, POST, roles).
    #[arg(long)]
    pub action: Option<String>,
    /// From this time on: an age (30s, 10m, 2h, 1d) or unix milliseconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Before this time: an age (30s, 10m, 2h, 1d) or unix milliseconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<i64>,
    /// At most this many rows (1–10000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// JSON lines, one row per line (the export format).
    #[arg(long)]
    pub json: bool,
    /// With --source env: the environment's API token instead of one the
    /// console issues (e.g. its admin.token's contents).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// With --source env: a file holding the environment's API token.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

fn who(e: &AuditEntry) -> String {
    if e.credential.is_empty() {
        e.principal.clone()
    } else {
        format!("{} [{}]", e.principal, e.credential)
    }
}

fn outcome(e: &AuditEntry) -> String {
    if e.outcome == "done" {
        "done".into()
    } else {
        format!("refused {}: {}", e.status, e.reason)
    }
}

pub async fn run(a: AuditArgs) -> anyhow::Result<()> {
    if a.source == Source::Env {
        return environment(a).await;
    }
    if a.token.is_some() || a.token_file.is_some() {
        anyhow::bail!(
            "--token and --token-file are for an environment's log (`--source env --env NAME`); \
             the console's log is read with your `runway login` session"
        );
    }
    let rows = a
        .console
        .client()?
        .audit(&AuditQuery {
            user: a.user,
            env: a.env,
            app: a.app,
            action: a.action,
            since_ms: a.since,
            until_ms: a.until,
            limit: Some(a.limit),
        })
        .await?;
    if a.json {
        return json_lines(&rows);
    }
    let mut t = Table::new(["TIME", "WHO", "FROM", "ACTION", "ENV", "APP", "OUTCOME"]);
    for e in &rows {
        t.row([
            rfc3339(e.at_ms),
            who(e),
            e.address.clone(),
            e.action.clone(),
            e.environment.clone().unwrap_or_else(|| "-".into()),
            e.app.clone().unwrap_or_else(|| "-".into()),
            outcome(e),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

/// JSON lines: one row per line (the export format).
fn json_lines<T: serde::Serialize>(rows: &[T]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for row in rows {
        writeln!(out, "{}", serde_json::to_string(row)?)?;
    }
    Ok(())
}

/// `--source env`: the environment's own audit log.
async fn environment(a: AuditArgs) -> anyhow::Result<()> {
    let Some(env) = a.env.clone() else {
        anyhow::bail!(
            "--source env needs --env NAME (an environment registered on the console, or its URL)"
        );
    };
    let conn = crate::connection::Connection {
        env: env.clone(),
        token: a.token,
        token_file: a.token_file,
    };
    let rows = conn
        .client()
        .await?
        .audit(&runway_api::trust::AuditQuery {
            user: a.user,
            app: a.app,
            action: a.action,
            since_ms: a.since,
            until_ms: a.until,
            limit: Some(a.limit.min(1000)),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the audit log of environment {env}: {e}"))?;
    if a.json {
        return json_lines(&rows);
    }
    let mut t = Table::new(["TIME", "WHO", "FROM", "ACTION", "PATH", "OUTCOME"]);
    for e in &rows {
        let who = match &e.credential {
            Some(c) if !c.is_empty() => format!("{} [{c}]", e.actor),
            _ => e.actor.clone(),
        };
        let outcome = match &e.detail {
            Some(d) if e.status >= 400 => format!("{} {}: {d}", e.outcome.as_str(), e.status),
            _ => format!("{} {}", e.outcome.as_str(), e.status),
        };
        t.row([
            rfc3339(e.at_ms),
            who,
            e.address.clone(),
            e.action.clone(),
            e.target.clone(),
            outcome,
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
