//! `runway apps`: the applications × environments matrix of the console
//! (running version per environment, `≠` where they differ);
//! `runway apps versions APP`; `runway apps tag APP --env ENV`.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::{Args, Subcommand};
use runway_api::console::{ApplicationView, EnvironmentView, RunningView, TagVersion};
use runway_api::v1::AppStatus;

use crate::commands::app::print_json;
use crate::commands::login::ConsoleArgs;
use crate::output::{Table, ago, or_dash, short_digest};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: Option<AppsCommand>,
    /// Print JSON instead of the matrix.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Subcommand, Debug)]
pub enum AppsCommand {
    /// The versions the console knows of an app (key, number, digest, where it runs).
    Versions(VersionsArgs),
    /// Record the version an environment runs (or has) as a console version;
    /// never changes bytes.
    Tag(TagArgs),
}

#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// The app's name or key.
    pub app: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The app's name.
    pub app: String,
    /// The environment (name or key) that has the version.
    #[arg(long = "env", value_name = "ENV")]
    pub environment: String,
    /// The version number [default: the one the environment runs].
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long, default_value = "")]
    pub changelog: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub async fn run(args: AppsArgs) -> anyhow::Result<()> {
    match args.command {
        None => matrix(args.json, &args.console).await,
        Some(AppsCommand::Versions(a)) => versions(a).await,
        Some(AppsCommand::Tag(a)) => tag(a).await,
    }
}

async fn matrix(json: bool, console: &ConsoleArgs) -> anyhow::Result<()> {
    let client = console.client()?;
    let apps = client.apps().await?;
    if json {
        return print_json(&apps);
    }
    let envs = client.environments().await?;
    if apps.is_empty() {
        println!(
            "no applications yet: the console records them as its environments run them \
             (`runway app publish --env NAME`)"
        );
        return Ok(());
    }
    print!("{}", render_matrix(&apps, &envs));
    Ok(())
}

/// One cell: the version (with `*` when its bytes are not the console's
/// version of that number), `(failed)` when it could not load, `-` when the
/// environment runs nothing of it.
fn cell(r: Option<&RunningView>) -> String {
    match r {
        None => "-".into(),
        Some(r) => match &r.version {
            None => "-".into(),
            Some(v) => {
                let mut s = v.clone();
                if r.version_key.is_none() {
                    s.push('*');
                }
                if r.status == AppStatus::Failed {
                    s.push_str(" (failed)");
                }
                s
            }
        },
    }
}

/// The matrix: one row per app, one column per environment (in pipeline
/// order), and `≠` where the environments that run it run different bytes.
pub fn render_matrix(apps: &[ApplicationView], envs: &[EnvironmentView]) -> String {
    let mut headers = vec!["APP".to_string()];
    headers.extend(envs.iter().map(|e| e.name.to_uppercase()));
    headers.push(String::new());
    let mut t = Table::new(headers);
    let mut starred = false;
    for app in apps {
        let mut row = vec![app.name.clone()];
        let mut digests = BTreeSet::new();
        for env in envs {
            let r = app.running.iter().find(|r| r.environment_key == env.key);
            if let Some(d) = r.and_then(|r| r.digest.as_ref()) {
                digests.insert(d.clone());
            }
            let c = cell(r);
            starred |= c.contains('*');
            row.push(c);
        }
        row.push(if digests.len() > 1 {
            "≠".into()
        } else {
            String::new()
        });
        t.row(row);
    }
    let mut out = t.render();
    if starred {
        out.push_str(
            "* runs bytes whose digest differs from the console's version of that number\n",
        );
    }
    out
}

async fn versions(args: VersionsArgs) -> anyhow::Result<()> {
    let versions = args.console.client()?.app_versions(&args.app).await?;
    if args.json {
        return print_json(&versions);
    }
    if versions.is_empty() {
        println!("the console knows no version of {}", args.app);
        return Ok(());
    }
    let mut t = Table::new(["VERSION", "DIGEST", "RUNNING IN", "CREATED", "KEY"]);
    for v in &versions {
        t.row([
            v.version.clone(),
            short_digest(&v.digest),
            or_dash(Some(&v.running_in.join(", "))),
            ago(Some(v.created_at_ms)),
            v.key.clone(),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

async fn tag(args: TagArgs) -> anyhow::Result<()> {
    let v = args
        .console
        .client()?
        .tag_version(
            &args.app,
            &TagVersion {
                environment: args.environment.clone(),
                version: args.version.clone(),
                changelog: args.changelog.clone(),
            },
        )
        .await
        .with_context(|| {
            format!(
                "cannot tag {} from environment {}",
                args.app, args.environment
            )
        })?;
    if args.json {
        return print_json(&v);
    }
    println!(
        "{}@{} is version {} (digest {})",
        v.app, v.version, v.key, v.digest
    );
    Ok(())
}
