//! `runway infra check FILE`, `runway infra draw FILE -o OUT.svg` and
//! `runway infra apply FILE --console URL [--dry-run]`: the infrastructure
//! as code (`infra.toml`, see `crate::infra`).

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
    /// Register the file's pipelines and environments on the console
    /// (idempotent: what is already there is left alone). With --dry-run,
    /// print the changes only.
    Apply(ApplyArgs),
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The infrastructure file (it must pass `runway infra check`).
    pub file: PathBuf,
    /// Print what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory holding an admin token of each environment to add, one file
    /// per environment: `<name>.token` (e.g. a copy of its data dir's
    /// admin.token). The console uses each once and keeps none.
    #[arg(long, value_name = "DIR")]
    pub token_dir: Option<PathBuf>,
    #[command(flatten)]
    pub console: crate::commands::login::ConsoleArgs,
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
        InfraCommand::Apply(args) => apply(args).await,
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

/// One change `infra apply` makes on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    CreatePipeline {
        name: String,
    },
    AddEnvironment {
        name: String,
        address: String,
        pipeline: Option<(String, i64)>,
    },
    PlaceEnvironment {
        name: String,
        pipeline: Option<(String, i64)>,
        was: Option<(String, i64)>,
    },
}

fn place(pipeline: &Option<(String, i64)>) -> String {
    match pipeline {
        Some((name, order)) => format!("pipeline {name}, stage {order}"),
        None => "no pipeline".to_string(),
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::CreatePipeline { name } => write!(f, "+ pipeline {name}"),
            Change::AddEnvironment {
                name,
                address,
                pipeline,
            } => write!(f, "+ environment {name} at {address} ({})", place(pipeline)),
            Change::PlaceEnvironment {
                name,
                pipeline,
                was,
            } => write!(
                f,
                "~ environment {name}: {} (was {})",
                place(pipeline),
                place(was)
            ),
        }
    }
}

/// What the file asks for, against what the console has: the changes, in
/// the order they are made, or the conflicts `apply` cannot resolve (an
/// environment registered at another address).
fn plan(
    parsed: &infra::Infra,
    pipelines: &[runway_api::console::PipelineView],
    environments: &[runway_api::console::EnvironmentView],
) -> Result<Vec<Change>, Vec<String>> {
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    for pipeline in &parsed.pipeline {
        let name = pipeline.get_ref().name.get_ref();
        if !pipelines.iter().any(|p| &p.name == name) {
            changes.push(Change::CreatePipeline { name: name.clone() });
        }
    }
    // Where the file places each environment: (pipeline, 1-based stage).
    let wanted_place = |env: &str| -> Option<(String, i64)> {
        parsed.pipeline.iter().find_map(|p| {
            let p = p.get_ref();
            p.environments
                .get_ref()
                .iter()
                .position(|e| e.get_ref() == env)
                .map(|i| (p.name.get_ref().clone(), i as i64 + 1))
        })
    };
    // Environments in pipeline order, so stages are added first to last.
    let mut ordered: Vec<&infra::Environment> =
        parsed.environment.iter().map(|e| e.get_ref()).collect();
    ordered.sort_by_key(|e| {
        wanted_place(e.name.get_ref())
            .map(|(p, n)| (0, p, n))
            .unwrap_or((1, String::new(), 0))
    });
    for env in ordered {
        let name = env.name.get_ref();
        let address = env.address.get_ref().trim_end_matches('/').to_string();
        let pipeline = wanted_place(name);
        match environments.iter().find(|e| &e.name == name) {
            None => changes.push(Change::AddEnvironment {
                name: name.clone(),
                address,
                pipeline,
            }),
            Some(existing) => {
                if existing.address.trim_end_matches('/') != address {
                    conflicts.push(format!(
                        "environment {name} is registered on the console at {}, the file says \
                         {address}: `infra apply` never moves an environment; remove it with \
                         `runway env remove {name}` and apply again, or fix the file",
                        existing.address
                    ));
                    continue;
                }
                let was = existing.pipeline.clone().zip(existing.order);
                if was != pipeline {
                    changes.push(Change::PlaceEnvironment {
                        name: name.clone(),
                        pipeline,
                        was,
                    });
                }
            }
        }
    }
    if conflicts.is_empty() {
        Ok(changes)
    } else {
        Err(conflicts)
    }
}

async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let (name, text, parsed) = read(&args.file)?;
    let findings = infra::check::check(&parsed, &text);
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.render(&name))
        .collect();
    if !errors.is_empty() {
        bail!(
            "{name} has {} error(s), nothing was applied: run `runway infra check {name}` and \
             fix them first:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    let console = args.console.client()?;
    let pipelines = console
        .pipelines()
        .await
        .context("failed to list the console's pipelines")?;
    let environments = console
        .environments()
        .await
        .context("failed to list the console's environments")?;
    let changes = match plan(&parsed, &pipelines, &environments) {
        Ok(changes) => changes,
        Err(conflicts) => bail!("{name}: nothing was applied:\n{}", conflicts.join("\n")),
    };
    // Every admin token needed is read before anything changes.
    let mut tokens = std::collections::BTreeMap::new();
    for change in &changes {
        if let Change::AddEnvironment { name: env, .. } = change {
            let Some(dir) = &args.token_dir else {
                bail!(
                    "environment {env} is to be added, which needs an admin token of it: give \
                     --token-dir DIR with {env}.token in it (nothing was applied)"
                );
            };
            let path = dir.join(format!("{env}.token"));
            if !args.dry_run {
                let token = crate::connection::read_token_file(&path, "--token-dir")?;
                tokens.insert(env.clone(), token);
            } else if !path.exists() {
                println!(
                    "! {} is missing: apply needs it to add {env}",
                    path.display()
                );
            }
        }
    }
    if changes.is_empty() {
        println!(
            "{name}: the console already has every pipeline and environment; nothing to change"
        );
        return Ok(());
    }
    for change in &changes {
        println!("{change}");
    }
    if args.dry_run {
        println!(
            "{name}: {} change(s) (dry run: nothing was changed)",
            changes.len()
        );
        return Ok(());
    }
    for (done, change) in changes.iter().enumerate() {
        let result = match change {
            Change::CreatePipeline { name } => console
                .create_pipeline(&runway_api::console::CreatePipeline {
                    name: name.clone(),
                    description: String::new(),
                })
                .await
                .map(drop),
            Change::AddEnvironment {
                name,
                address,
                pipeline,
            } => console
                .add_environment(&runway_api::console::AddEnvironment {
                    name: name.clone(),
                    address: address.clone(),
                    token: tokens[name].clone(),
                    pipeline: pipeline.as_ref().map(|(p, _)| p.clone()),
                    order: pipeline.as_ref().map(|(_, n)| *n),
                    allow_insecure: false,
                    two_step: false,
                })
                .await
                .map(drop),
            Change::PlaceEnvironment { name, pipeline, .. } => console
                .set_environment_pipeline(
                    name,
                    &runway_api::console::SetEnvironmentPipeline {
                        pipeline: pipeline.as_ref().map(|(p, _)| p.clone()),
                        order: pipeline.as_ref().map(|(_, n)| *n),
                    },
                )
                .await
                .map(drop),
        };
        // What was applied stays (each step is whole on the console);
        // applying again picks up from here.
        result.with_context(|| {
            format!(
                "{change}: failed after {done} of {} change(s); fix the cause and apply again \
                 (what was applied is kept, and found in place next time)",
                changes.len()
            )
        })?;
    }
    println!("{name}: applied {} change(s)", changes.len());
    Ok(())
}
