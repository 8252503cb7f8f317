//! `runway app new NAME [--dir PARENT]`

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use runway_manifest::AppName;

use crate::templates;

#[derive(Args, Debug)]
pub struct NewArgs {
    /// App name: lowercase letters, digits and '-', starting with a letter.
    pub name: String,
    /// Directory to create the app in (as PARENT/NAME).
    #[arg(long, value_name = "PARENT", default_value = ".")]
    pub dir: PathBuf,
}

pub async fn run(args: NewArgs) -> anyhow::Result<()> {
    let name =
        AppName::parse(&args.name).map_err(|e| anyhow!("invalid app name {:?}: {e}", args.name))?;
    let target = args.dir.join(name.as_str());
    if target.exists() {
        if !target.is_dir() {
            bail!("{} already exists and is not a directory", target.display());
        }
        let mut entries = std::fs::read_dir(&target)
            .with_context(|| format!("cannot read directory {}", target.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty; choose another name or --dir",
                target.display()
            );
        }
    }
    let written = templates::write_app(&target, &name)?;
    println!(
        "created app {name} in {} ({} files)",
        target.display(),
        written.len()
    );
    println!();
    println!("next steps:");
    println!(
        "  cd {} && runway app build && runway app publish",
        target.display()
    );
    Ok(())
}
