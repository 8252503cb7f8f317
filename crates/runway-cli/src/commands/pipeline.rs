//! `runway pipeline add|list|show`: named, ordered lists of environments on
//! the console (an environment belongs to one pipeline; `runway env add
//! --pipeline P --order N` places it).

use anyhow::Context;
use clap::{Args, Subcommand};
use runway_api::console::{CreatePipeline, PipelineView};

use crate::commands::app::print_json;
use crate::commands::login::ConsoleArgs;
use crate::output::Table;

#[derive(Subcommand, Debug)]
pub enum PipelineCommand {
    /// Create a pipeline.
    Add(AddArgs),
    /// List the pipelines and their stages.
    List(ListArgs),
    /// Show one pipeline: its environments in order.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The pipeline's name, e.g. main.
    pub name: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The pipeline's name or key.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub async fn run(cmd: PipelineCommand) -> anyhow::Result<()> {
    match cmd {
        PipelineCommand::Add(a) => {
            let p = a
                .console
                .client()?
                .create_pipeline(&CreatePipeline {
                    name: a.name.clone(),
                    description: a.description,
                })
                .await
                .with_context(|| format!("cannot create pipeline {:?}", a.name))?;
            if a.json {
                return print_json(&p);
            }
            println!(
                "created pipeline {} ({}); place environments with `runway env add NAME URL \
                 --token … --pipeline {} --order N`",
                p.name, p.key, p.name
            );
            Ok(())
        }
        PipelineCommand::List(a) => {
            let pipelines = a.console.client()?.pipelines().await?;
            if a.json {
                return print_json(&pipelines);
            }
            if pipelines.is_empty() {
                println!("no pipelines; create one with `runway pipeline add NAME`");
                return Ok(());
            }
            let mut t = Table::new(["NAME", "STAGES", "KEY"]);
            for p in &pipelines {
                t.row([p.name.clone(), stages(p), p.key.clone()]);
            }
            print!("{}", t.render());
            Ok(())
        }
        PipelineCommand::Show(a) => {
            let p = a.console.client()?.pipeline(&a.name).await?;
            if a.json {
                return print_json(&p);
            }
            println!("{}: {}", p.name, stages(&p));
            if !p.description.is_empty() {
                println!("{}", p.description);
            }
            if !p.environments.is_empty() {
                let mut t = Table::new(["ORDER", "ENVIRONMENT", "ADDRESS", "KEY"]);
                for e in &p.environments {
                    t.row([
                        e.order.to_string(),
                        e.name.clone(),
                        e.address.clone(),
                        e.key.clone(),
                    ]);
                }
                print!("{}", t.render());
            }
            Ok(())
        }
    }
}

/// `dev → test → prod`, or `(no environments)`.
pub fn stages(p: &PipelineView) -> String {
    if p.environments.is_empty() {
        return "(no environments)".into();
    }
    p.environments
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}
