//! `runway zone create|list|show|set|remove`: the environment's deployment
//! zones (sets of front-ends with an address). Front-ends join one with
//! `runway frontend serve --zone NAME`; apps are deployed to one with
//! `runway app zone APP ZONE`.

use clap::{Args, Subcommand};
use runway_api::v1::{CreateZone, UpdateZone, ZoneView};

use crate::commands::app::print_json;
use crate::connection::Connection;
use crate::output::{Table, fields};

#[derive(Subcommand, Debug)]
pub enum ZoneCommand {
    /// Create a zone: its name and address (its balancer, or its single server).
    Create(CreateArgs),
    /// List the zones with their address, front-ends and apps.
    List(ListArgs),
    /// Show one zone.
    Show(NameArgs),
    /// Change a zone's address (and whether calls into it use HTTPS).
    Set(CreateArgs),
    /// Remove a zone (refused for global, and while front-ends or apps use it).
    Remove(NameArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The zone's name (1 to 63 letters, digits, '-' or '.').
    pub name: String,
    /// Where other zones' apps reach this zone's apps: its balancer or its
    /// single server, http(s)://host[:port].
    #[arg(long)]
    pub address: String,
    /// App-to-app calls into this zone use HTTPS ("use HTTPS for internal
    /// communication"); the address must then be https://.
    #[arg(long)]
    pub https_internal: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
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
    /// The zone's name, as `runway zone list` shows it.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(cmd: ZoneCommand) -> anyhow::Result<()> {
    match cmd {
        ZoneCommand::Create(args) => {
            check_https(&args)?;
            let zone = args
                .conn
                .client()
                .await?
                .create_zone(&CreateZone {
                    name: args.name.clone(),
                    address: args.address.clone(),
                    https_internal: args.https_internal,
                })
                .await?;
            if args.json {
                return print_json(&zone);
            }
            println!(
                "created zone {} at {}; start its front-ends with `runway frontend serve … --zone {}`",
                zone.name,
                zone.address.as_deref().unwrap_or("-"),
                zone.name
            );
            Ok(())
        }
        ZoneCommand::Set(args) => {
            check_https(&args)?;
            let zone = args
                .conn
                .client()
                .await?
                .update_zone(
                    &args.name,
                    &UpdateZone {
                        address: args.address.clone(),
                        https_internal: args.https_internal,
                    },
                )
                .await?;
            if args.json {
                return print_json(&zone);
            }
            print!("{}", render_one(&zone));
            Ok(())
        }
        ZoneCommand::List(args) => {
            let zones = args.conn.client().await?.zones().await?;
            if args.json {
                return print_json(&zones);
            }
            print!("{}", render(&zones));
            Ok(())
        }
        ZoneCommand::Show(args) => {
            let zone = args.conn.client().await?.zone(&args.name).await?;
            if args.json {
                return print_json(&zone);
            }
            print!("{}", render_one(&zone));
            Ok(())
        }
        ZoneCommand::Remove(args) => {
            args.conn.client().await?.remove_zone(&args.name).await?;
            println!("removed zone {}", args.name);
            Ok(())
        }
    }
}

/// `--https-internal` with an http:// address would send internal calls in
/// the clear while the operator asked for HTTPS.
fn check_https(args: &CreateArgs) -> anyhow::Result<()> {
    if args.https_internal && !args.address.starts_with("https://") {
        anyhow::bail!(
            "zone {}: --https-internal needs an https:// --address (got {}); give the zone's \
             HTTPS address, or drop --https-internal",
            args.name,
            args.address
        );
    }
    Ok(())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// The `zone list` table.
pub fn render(zones: &[ZoneView]) -> String {
    let mut t = Table::new(["ZONE", "ADDRESS", "HTTPS", "FRONT-ENDS", "APPS"]);
    for z in zones {
        t.row([
            z.name.clone(),
            z.address.clone().unwrap_or_else(|| "-".into()),
            if z.https_internal { "yes" } else { "no" }.to_string(),
            list_or_none(&z.frontends),
            list_or_none(&z.apps),
        ]);
    }
    t.render()
}

/// `zone show`.
pub fn render_one(z: &ZoneView) -> String {
    fields(&[
        ("zone", z.name.clone()),
        ("address", z.address.clone().unwrap_or_else(|| "-".into())),
        (
            "https internal",
            if z.https_internal { "yes" } else { "no" }.to_string(),
        ),
        ("generation", z.generation.to_string()),
        ("front-ends", list_or_none(&z.frontends)),
        ("apps", list_or_none(&z.apps)),
    ])
}
