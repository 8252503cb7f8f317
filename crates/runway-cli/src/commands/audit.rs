//! `runway audit [--user U] [--env E] [--app A] [--action TEXT] [--since T]
//! [--until T] [--limit N] [--json]`: the console's audit log, newest first;
//! `--json` prints JSON lines (one row per line), the export format.

use std::io::Write as _;

use clap::Args;
use runway_api::console::identity::{AuditEntry, AuditQuery};

use crate::commands::login::ConsoleArgs;
use crate::commands::logs::parse_time;
use crate::output::{Table, rfc3339};

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only rows of this user or service account.
    #[arg(long)]
    pub user: Option<String>,
    /// Only rows about this environment.
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
    let mut out = std::io::stdout().lock();
    if a.json {
        for row in &rows {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        }
        return Ok(());
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
    write!(out, "{}", t.render())?;
    Ok(())
}
