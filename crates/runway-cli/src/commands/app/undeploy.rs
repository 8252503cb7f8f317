//! `runway app undeploy NAME`

use anyhow::Context as _;
use clap::Args;
use runway_manifest::AppName;

use crate::connection::Connection;

#[derive(Args, Debug)]
pub struct UndeployArgs {
    /// The app to take out of the routing table; its versions, key-value
    /// data and properties stay, and deploying a version brings it back.
    #[arg(value_name = "NAME")]
    pub app: String,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: UndeployArgs) -> anyhow::Result<()> {
    let app = AppName::parse(&args.app).with_context(|| format!("app name {:?}", args.app))?;
    let d = args.conn.client().await?.undeploy(app.as_str()).await?;
    println!(
        "undeployed {app} {} (deployment {}{}); its versions, data and properties are kept: \
         `runway app deploy {app}@VERSION` brings it back",
        d.version,
        d.id,
        d.generation
            .map(|g| format!(", generation {g}"))
            .unwrap_or_default()
    );
    Ok(())
}
