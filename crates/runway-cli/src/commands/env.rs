//! `runway env [--env URL|NAME] [--json]`: one environment, asked directly
//! (its own API: engine, generation, limits, front-ends).
//!
//! `runway env add|list|show|remove`: the environments registered on the
//! console of `runway login` (see `env_console`).

use clap::{Args, Subcommand};
use runway_api::v1::{EnvironmentInfo, HostnameChange, LogDropped};

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
    /// Change a setting of one environment (asked directly): `runway env set
    /// hostname www.example.com [--scheme https]`, or `--default`.
    Set(SetArgs),
}

/// The settings `runway env set` changes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// The hostname of every absolute URL the platform produces (the apps'
    /// `runway.base_url`); default: the controller's address.
    Hostname,
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// The setting.
    #[arg(value_enum)]
    pub setting: Setting,
    /// Its value, e.g. www.example.com (host[:port], no scheme).
    #[arg(required_unless_present = "default", conflicts_with = "default")]
    pub value: Option<String>,
    /// The scheme of the hostname's URLs.
    #[arg(long, default_value = "https", value_parser = ["https", "http"])]
    pub scheme: String,
    /// Go back to the default (the controller's address).
    #[arg(long)]
    pub default: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn set(args: SetArgs) -> anyhow::Result<()> {
    match args.setting {
        Setting::Hostname => {
            let change = HostnameChange {
                hostname: args.value.clone(),
                scheme: args.value.as_ref().map(|_| args.scheme.clone()),
            };
            let view = args.conn.client().await?.set_hostname(&change).await?;
            if args.json {
                return print_json(&view);
            }
            match &view.hostname {
                Some(hostname) => println!(
                    "hostname {hostname} ({}); apps see runway.base_url = {}",
                    view.scheme, view.base_url
                ),
                None => println!(
                    "hostname unset: the controller's address; apps see runway.base_url = {}",
                    view.base_url
                ),
            }
            Ok(())
        }
    }
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
        let mut t = Table::new(["NAME", "ADDRESS", "ZONE", "STATE", "GENERATION"]);
        for f in &info.frontends {
            t.row([
                f.name.clone(),
                f.address.clone(),
                f.zone.clone(),
                f.state.to_string(),
                f.generation.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }
    if !info.zones.is_empty() {
        out.push_str("zones:\n");
        out.push_str(&crate::commands::zone::render(&info.zones));
    }
    out
}
