//! `runway app build [--dir DIR]`

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use runway_manifest::Package;

use crate::output::human_size;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The app directory (with runway.toml, and Cargo.toml for a Rust app).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

pub async fn run(args: BuildArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    if dir.join("Cargo.toml").is_file() {
        cargo_build(dir).await?;
    }
    let (path, pkg, size) = pack(dir)?;
    println!(
        "built {} ({}, {})",
        path.display(),
        human_size(size),
        pkg.digest
    );
    Ok(())
}

/// `cargo build --target wasm32-wasip2 --release` in `dir`, output on our stdio.
async fn cargo_build(dir: &Path) -> anyhow::Result<()> {
    eprintln!(
        "building {} (cargo build --target wasm32-wasip2 --release)",
        dir.display()
    );
    let status = tokio::process::Command::new("cargo")
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .current_dir(dir)
        // The manifest's component path is `target/…` relative to the app, so a
        // target directory set for some other project must not apply here.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .status()
        .await
        .with_context(|| format!("cannot run cargo in {}; is Rust installed?", dir.display()))?;
    if !status.success() {
        let how = match status.code() {
            Some(n) => format!("exit {n}"),
            None => "killed by a signal".to_owned(),
        };
        bail!(
            "cargo build failed in {} ({how}); if the target is missing run: rustup target add wasm32-wasip2",
            dir.display()
        );
    }
    Ok(())
}

/// Packs `dir` and writes `dir/target/runway/{name}-{version}.rwp`.
pub fn pack(dir: &Path) -> anyhow::Result<(PathBuf, Package, u64)> {
    let pkg = Package::from_dir(dir)?;
    let bytes = pkg.to_bytes();
    let out_dir = dir.join("target").join("runway");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create directory {}", out_dir.display()))?;
    let path = out_dir.join(pkg.file_name());
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, pkg, bytes.len() as u64))
}
