//! `runway app versions NAME [--json]`

use clap::Args;

use super::print_json;
use crate::connection::Connection;
use crate::output::{Table, ago, human_size, short_digest};

#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// The app.
    pub name: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: VersionsArgs) -> anyhow::Result<()> {
    let versions = args.conn.client().await?.versions(&args.name).await?;
    if args.json {
        return print_json(&versions);
    }
    if versions.is_empty() {
        eprintln!("{} has no published versions", args.name);
        return Ok(());
    }
    let mut t = Table::new(["VERSION", "DIGEST", "SIZE", "PUBLISHED", "RUNNING"]);
    for v in &versions {
        t.row([
            v.version.clone(),
            short_digest(&v.digest),
            human_size(v.size_bytes.max(0) as u64),
            ago(Some(v.published_at_ms)),
            if v.running { "*" } else { "" }.to_owned(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
