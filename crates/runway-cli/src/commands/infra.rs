//! `runway infra check FILE` and `runway infra draw FILE -o OUT.svg`: the
//! infrastructure as code (`infra.toml`, see `crate::infra`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::infra::{self, check::Severity};

#[derive(Subcommand, Debug)]
pub enum InfraCommand {
    /// Check an infra.toml against the seeds' rules; each finding names the
    /// line, the rule and the fix. Exits non-zero on any error.
    Check(CheckArgs),
    /// Draw an infra.toml as an SVG diagram.
    Draw(DrawArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The infrastructure file.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct DrawArgs {
    /// The infrastructure file.
    pub file: PathBuf,
    /// Where to write the SVG.
    #[arg(short, long, value_name = "OUT.svg")]
    pub output: PathBuf,
}

pub async fn run(cmd: InfraCommand) -> anyhow::Result<()> {
    match cmd {
        InfraCommand::Check(args) => check(&args.file),
        InfraCommand::Draw(args) => draw(&args.file, &args.output),
    }
}

fn read(file: &Path) -> anyhow::Result<(String, String, infra::Infra)> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read the infrastructure file {name}"))?;
    let parsed = infra::parse(&text, &name)?;
    Ok((name, text, parsed))
}

fn check(file: &Path) -> anyhow::Result<()> {
    let (name, text, parsed) = read(file)?;
    let findings = infra::check::check(&parsed, &text);
    for finding in &findings {
        println!("{}", finding.render(&name));
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    let counts = infra::check::counts(&parsed);
    if errors > 0 {
        bail!("{name}: {errors} error(s), {warnings} warning(s)");
    }
    println!(
        "{name}: ok ({} environments, {} pipelines, {} database servers, {} front-end servers \
         including the console's, {} balancers, {} reverse proxies; {warnings} warning(s))",
        counts.environments,
        counts.pipelines,
        counts.database_servers,
        counts.frontend_servers,
        counts.balancers,
        counts.reverse_proxies,
    );
    Ok(())
}

fn draw(file: &Path, output: &Path) -> anyhow::Result<()> {
    let (name, text, parsed) = read(file)?;
    let errors = infra::check::check(&parsed, &text)
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if errors > 0 {
        bail!("{name} has {errors} error(s): run `runway infra check {name}` and fix them first");
    }
    std::fs::write(output, infra::draw::draw(&parsed))
        .with_context(|| format!("failed to write {}", output.display()))?;
    println!("runway: drew {name} to {}", output.display());
    Ok(())
}
