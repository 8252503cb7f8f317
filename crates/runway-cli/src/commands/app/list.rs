//! `runway app list [--json]`

use clap::Args;

use super::print_json;
use crate::connection::Connection;
use crate::output::{Table, ago, or_dash};

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: ListArgs) -> anyhow::Result<()> {
    let apps = args.conn.client().await?.apps().await?;
    if args.json {
        return print_json(&apps);
    }
    if apps.is_empty() {
        eprintln!("no apps yet; create one with: runway app new NAME");
        return Ok(());
    }
    let mut t = Table::new(["NAME", "VERSION", "STATUS", "DEPLOYED", "DESCRIPTION"]);
    for a in &apps {
        t.row([
            a.name.clone(),
            or_dash(a.running_version.as_deref()),
            a.status.to_string(),
            ago(a.deployed_at_ms),
            a.description.clone().unwrap_or_default(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
