//! `runway env [--env URL|NAME] [--json]`: one environment, asked directly
//! (its own API: engine, generation, limits, front-ends).
//!
//! `runway env add|list|show|remove`: the environments registered on the
//! console of `runway login` (see `env_console`).

use clap::{Args, Subcommand};
use runway_api::v1::{EnvironmentInfo, LogDropped};

use crate::commands::app::print_json;
use crate::commands::app::show::limits;
use crate::commands::env_console;
use crate::connection::Connection;
use crate::output::{Table, fields};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub command: Option<EnvCommand>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// The console's registry of environments (needs `runway login`).
#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Register an environment on the console (mints the console's own token there).
    Add(env_console::AddArgs),
    /// List the console's environments: address, pipeline, order, health, front-ends.
    List(env_console::ListArgs),
    /// Show one registered environment: health, front-ends, the apps it runs.
    Show(env_console::ShowArgs),
    /// Remove an environment from the console (refused while plans use it).
    Remove(env_console::RemoveArgs),
}

pub async fn run(args: EnvArgs) -> anyhow::Result<()> {
    if let Some(command) = args.command {
        return env_console::run(command).await;
    }
    let info = args.conn.client().await?.environment().await?;
    if args.json {
        return print_json(&info);
    }
    print!("{}", render(&info));
    Ok(())
}

/// The non-zero drop counts, e.g. `4500 (output rate limit), 3 (rejected by the database)`.
pub fn log_dropped(d: &LogDropped) -> String {
    let causes = [
        (d.queue_full, "queue full"),
        (d.output_rate_limit, "output rate limit"),
        (d.rejected, "rejected by the database"),
        (d.database_unavailable, "database unavailable"),
        (d.size_cap, "size cap"),
    ];
    let shown: Vec<String> = causes
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, cause)| format!("{n} ({cause})"))
        .collect();
    if shown.is_empty() {
        "none".to_string()
    } else {
        shown.join(", ")
    }
}

pub fn render(info: &EnvironmentInfo) -> String {
    let mut out = fields(&[
        ("name", info.name.clone()),
        ("base url", info.base_url.clone()),
        ("runway", info.runway_version.clone()),
        ("engine", info.engine.clone()),
        ("generation", info.generation.to_string()),
        ("limits", limits(&info.limits)),
        ("log rows dropped", log_dropped(&info.log_dropped)),
    ]);
    out.push('\n');
    if info.frontends.is_empty() {
        out.push_str("front-ends: none\n");
    } else {
        out.push_str("front-ends:\n");
        let mut t = Table::new(["NAME", "ADDRESS", "STATE", "GENERATION"]);
        for f in &info.frontends {
            t.row([
                f.name.clone(),
                f.address.clone(),
                f.state.to_string(),
                f.generation.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}
