//! `runway app zone APP ZONE`: deploy an app to a deployment zone.

use anyhow::Context as _;
use clap::Args;
use runway_manifest::AppName;

use crate::connection::Connection;

#[derive(Args, Debug)]
pub struct ZoneArgs {
    /// The app.
    #[arg(value_name = "APP")]
    pub app: String,
    /// The zone it is deployed to (`runway zone list`); `global` is the default zone.
    #[arg(value_name = "ZONE")]
    pub zone: String,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: ZoneArgs) -> anyhow::Result<()> {
    let app = AppName::parse(&args.app).with_context(|| format!("app name {:?}", args.app))?;
    let client = args.conn.client().await?;
    match client.set_app_zone(app.as_str(), &args.zone).await? {
        Some(d) => println!(
            "deployed {app} {} to zone {} (deployment {}{}); it runs only on that zone's front-ends",
            d.version,
            args.zone,
            d.id,
            d.generation
                .map(|g| format!(", generation {g}"))
                .unwrap_or_default()
        ),
        None => println!(
            "{app} is in zone {}; its next deployment runs on that zone's front-ends",
            args.zone
        ),
    }
    Ok(())
}
