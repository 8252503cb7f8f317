//! `runway app delete NAME@VERSION`

use clap::Args;

use crate::connection::Connection;
use crate::parse::parse_app_at_version;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The version to delete, e.g. notes@0.1.0 (it must not be running).
    #[arg(value_name = "NAME@VERSION")]
    pub target: String,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: DeleteArgs) -> anyhow::Result<()> {
    let (app, version) = parse_app_at_version(&args.target)?;
    args.conn
        .client()
        .await?
        .delete_version(app.as_str(), &version.to_string())
        .await?;
    println!("deleted {app} {version}");
    Ok(())
}
