//! `runway deploy …`: deployment plans on the console (LifeTime's
//! deployment plans). `runway deploy APP[@VERSION]… --from ENV --to ENV`
//! creates, validates and starts a plan (`--wait` follows it and exits
//! non-zero unless it finished successfully); `runway deploy plan …` only
//! saves and validates one; `list / show / validate / start / continue /
//! abort / delete` manage them. The single-environment deploy of a
//! published version is `runway app deploy`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use runway_api::console::plans::{
    CreatePlan, PlanFrontendProgress, PlanLogKind, PlanOperationRequest, PlanStatus,
    PlanValidation, PlanView,
};
use runway_client::ConsoleClient;

use crate::commands::app::print_json;
use crate::commands::login::ConsoleArgs;
use crate::output::{Table, ago, human_size, or_dash, short_digest};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub command: Option<DeployCommand>,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Follow the plan to its end; exit non-zero unless it finished successfully.
    #[arg(long)]
    pub wait: bool,
}

/// What a plan is made of.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Apps to deploy: `APP@VERSION`, or `APP` for the version the source runs.
    pub apps: Vec<String>,
    /// Source environment (name or key).
    #[arg(long, value_name = "ENV")]
    pub from: Option<String>,
    /// Target environment (name or key).
    #[arg(long, value_name = "ENV")]
    pub to: Option<String>,
    /// Undeploy this app from the target (repeatable).
    #[arg(long, value_name = "APP")]
    pub undeploy: Vec<String>,
    /// Set a property in the target with the plan: `APP.KEY=VALUE` (repeatable).
    #[arg(long = "set", value_name = "APP.KEY=VALUE")]
    pub set: Vec<String>,
    /// Older versions than the target runs are intended (rollback).
    #[arg(long)]
    pub rollback: bool,
    /// Stop after prepare (needs_user_intervention); `continue` commits.
    #[arg(long)]
    pub two_step: bool,
    /// Allow deploying backwards or skipping a pipeline stage (logged).
    #[arg(long)]
    pub allow_out_of_order: bool,
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    /// The plan's key.
    pub key: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct FollowArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Follow the plan; exit non-zero unless it finished successfully.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only plans to this target environment.
    #[arg(long, value_name = "ENV")]
    pub to: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Subcommand, Debug)]
pub enum DeployCommand {
    /// Save and validate a plan without starting it.
    Plan(PlanArgs),
    /// The plans, newest first.
    List(ListArgs),
    /// A plan, its operations and its status log.
    Show(KeyArgs),
    /// Check a plan against its source and target now.
    Validate(KeyArgs),
    /// Validate and start a saved plan.
    Start(FollowArgs),
    /// Commit a two-step plan waiting prepared.
    Continue(FollowArgs),
    /// Abort a running or prepared plan (the target stays as it was).
    Abort(KeyArgs),
    /// Delete a plan that is not running.
    Delete(KeyArgs),
}

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    match args.command {
        None => deploy(args.plan, args.wait).await,
        Some(DeployCommand::Plan(a)) => save(a).await,
        Some(DeployCommand::List(a)) => list(a).await,
        Some(DeployCommand::Show(a)) => show(a).await,
        Some(DeployCommand::Validate(a)) => validate(a).await,
        Some(DeployCommand::Start(a)) => start(a).await,
        Some(DeployCommand::Continue(a)) => continue_plan(a).await,
        Some(DeployCommand::Abort(a)) => abort(a).await,
        Some(DeployCommand::Delete(a)) => delete(a).await,
    }
}

/// The plan request from the command line.
async fn request(client: &ConsoleClient, a: &PlanArgs) -> anyhow::Result<CreatePlan> {
    let (Some(from), Some(to)) = (&a.from, &a.to) else {
        bail!("a plan needs --from ENV and --to ENV (`runway env list` shows the environments)");
    };
    if a.apps.is_empty() && a.undeploy.is_empty() {
        bail!("nothing to deploy: name apps (`notes@0.2.0` or `notes`) or --undeploy APP");
    }
    let mut operations = Vec::new();
    for spec in &a.apps {
        let (app, version) = match spec.split_once('@') {
            Some((app, v)) if !app.is_empty() && !v.is_empty() => (app.to_string(), v.to_string()),
            Some(_) => bail!("{spec:?} is not APP@VERSION (e.g. notes@0.2.0)"),
            None => {
                // The version the source runs.
                let view = client
                    .app(spec)
                    .await
                    .with_context(|| format!("cannot find app {spec} on the console"))?;
                let running = view
                    .running
                    .iter()
                    .find(|r| &r.environment == from || &r.environment_key == from)
                    .and_then(|r| r.version_key.clone().or(r.version.clone()));
                match running {
                    Some(v) => (spec.clone(), v),
                    None => bail!(
                        "{spec} runs no console version in {from}: name the version \
                         ({spec}@VERSION), or deploy it to {from} first"
                    ),
                }
            }
        };
        operations.push(PlanOperationRequest::Deploy {
            app,
            version,
            rollback: a.rollback,
        });
    }
    for app in &a.undeploy {
        operations.push(PlanOperationRequest::Undeploy { app: app.clone() });
    }
    let mut properties: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for s in &a.set {
        let Some((target, value)) = s.split_once('=') else {
            bail!("--set {s:?} is not APP.KEY=VALUE");
        };
        let Some((app, key)) = target.split_once('.') else {
            bail!("--set {s:?} is not APP.KEY=VALUE (the app is missing)");
        };
        properties
            .entry(app.to_string())
            .or_default()
            .insert(key.to_string(), Some(value.to_string()));
    }
    Ok(CreatePlan {
        source: from.clone(),
        target: to.clone(),
        operations,
        properties,
        notes: a.notes.clone(),
        two_step: a.two_step.then_some(true),
        allow_out_of_order: a.allow_out_of_order,
    })
}

fn print_validation(v: &PlanValidation) {
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
    for c in &v.conflicts {
        if c.app.is_empty() {
            eprintln!("conflict: {}", c.message);
        } else {
            eprintln!("conflict ({}): {}", c.app, c.message);
        }
    }
}

async fn deploy(a: PlanArgs, wait: bool) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let req = request(&client, &a).await?;
    let plan = client.create_plan(&req).await?;
    let validation = client.validate_plan(&plan.key).await?;
    print_validation(&validation);
    if !validation.ok {
        bail!(
            "plan {} has {} conflict(s) and was not started (it stays saved: fix them, then \
             `runway deploy start {}`)",
            plan.key,
            validation.conflicts.len(),
            plan.key
        );
    }
    let plan = client.start_plan(&plan.key).await?;
    if a.json && !wait {
        return print_json(&plan);
    }
    eprintln!("plan {} started: {}", plan.key, describe(&plan));
    if wait {
        return follow(&client, &plan, a.json).await;
    }
    println!("{}", plan.key);
    Ok(())
}

async fn save(a: PlanArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let req = request(&client, &a).await?;
    let plan = client.create_plan(&req).await?;
    let validation = client.validate_plan(&plan.key).await?;
    if a.json {
        return print_json(&serde_json::json!({"plan": plan, "validation": validation}));
    }
    print_validation(&validation);
    println!("plan {} saved: {}", plan.key, describe(&plan));
    if validation.ok {
        println!("valid; start it with `runway deploy start {}`", plan.key);
        Ok(())
    } else {
        bail!(
            "plan {} has {} conflict(s); fix them and `runway deploy validate {}`",
            plan.key,
            validation.conflicts.len(),
            plan.key
        )
    }
}

fn describe(plan: &PlanView) -> String {
    let ops: Vec<String> = plan
        .operations
        .iter()
        .map(|o| match &o.version {
            Some(v) => format!(
                "{}@{v}{}",
                o.app,
                if o.rollback { " (rollback)" } else { "" }
            ),
            None => format!("undeploy {}", o.app),
        })
        .collect();
    format!(
        "{} → {}: {}{}",
        plan.source,
        plan.target,
        ops.join(", "),
        if plan.two_step { " (two-step)" } else { "" }
    )
}

/// Follows a plan: a progress bar, one line per target front-end when the
/// target has several, and the status log as it grows, until the plan ends or
/// waits for the user. Without a terminal (or under `CI`) the same facts come
/// as plain lines: each log row, and each front-end's stage as it changes.
async fn follow(client: &ConsoleClient, plan: &PlanView, json: bool) -> anyhow::Result<()> {
    let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let steps = plan.operations.len() as u64 * 2 + 3;
    let bars = MultiProgress::with_draw_target(if interactive {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let pb = bars.add(ProgressBar::new(steps));
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg} {elapsed}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(Duration::from_millis(120));
    let mut frontends = FrontendLines::default();
    let mut after = 0;
    let mut failures = 0;
    let status = loop {
        let s = match client.plan_status(&plan.key, after).await {
            Ok(s) => {
                failures = 0;
                s
            }
            Err(e) if failures < 10 => {
                failures += 1;
                pb.set_message(format!("console not answering ({e}); retrying"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e).context("lost the console while following the plan"),
        };
        for row in &s.log {
            after = row.id;
            let kind = match row.kind {
                PlanLogKind::Info => "info",
                PlanLogKind::Warning => "warning",
                PlanLogKind::Error => "error",
            };
            let line = format!(
                "{} {kind:<7} {}",
                crate::output::rfc3339(row.instant_ms),
                row.message
            );
            if interactive {
                let _ = bars.println(line);
            } else {
                eprintln!("{line}");
            }
            pb.inc(1);
        }
        frontends.update(&bars, interactive, &s.frontends);
        pb.set_message(s.status.as_str().to_string());
        if s.status.is_finished() || s.status == PlanStatus::NeedsUserIntervention {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    frontends.finish();
    pb.finish_and_clear();
    if json {
        print_json(&client.plan(&plan.key).await?)?;
    } else {
        println!("plan {}: {}", plan.key, status.status.as_str());
    }
    match status.status {
        PlanStatus::FinishedSuccessful => Ok(()),
        PlanStatus::NeedsUserIntervention => bail!(
            "plan {} is prepared and waits: `runway deploy continue {}` commits it, `runway \
             deploy abort {}` leaves the target as it was",
            plan.key,
            plan.key,
            plan.key
        ),
        other => bail!(
            "plan {} ended {}: {}",
            plan.key,
            other.as_str(),
            status.info
        ),
    }
}

/// One line per target front-end while a plan runs, where the target has
/// several: a spinner each on a terminal, else a plain line each time a
/// front-end's stage changes.
#[derive(Default)]
struct FrontendLines {
    lines: BTreeMap<String, (ProgressBar, String)>,
}

impl FrontendLines {
    fn update(
        &mut self,
        bars: &MultiProgress,
        interactive: bool,
        frontends: &[PlanFrontendProgress],
    ) {
        if frontends.len() < 2 && self.lines.is_empty() {
            return;
        }
        for fe in frontends {
            let text = frontend_stage(fe);
            let entry = self.lines.entry(fe.frontend.clone()).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new_spinner());
                if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg}") {
                    bar.set_style(style);
                }
                bar.enable_steady_tick(Duration::from_millis(120));
                (bar, String::new())
            });
            if entry.1 == text {
                continue;
            }
            let line = format!("front-end {}: {text}", fe.frontend);
            if interactive {
                entry.0.set_message(line);
            } else {
                eprintln!("{line}");
            }
            entry.1 = text;
        }
    }

    fn finish(self) {
        for (bar, _) in self.lines.into_values() {
            bar.finish_and_clear();
        }
    }
}

/// A front-end's stage in words: "staging…", "staged (12.0 KiB in 40 ms)",
/// "committed", "failed: …".
fn frontend_stage(fe: &PlanFrontendProgress) -> String {
    let Some(state) = fe.state else {
        return "staging…".to_string();
    };
    let mut text = state.as_str().to_string();
    if fe.fetched_bytes > 0 || fe.elapsed_ms > 0 {
        text.push_str(&format!(
            " ({} fetched in {} ms)",
            human_size(fe.fetched_bytes),
            fe.elapsed_ms
        ));
    }
    if let Some(error) = &fe.error {
        text.push_str(&format!(": {error}"));
    }
    text
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let plans = client.plans(a.to.as_deref()).await?;
    if a.json {
        return print_json(&plans);
    }
    if plans.is_empty() {
        println!("no plans yet: `runway deploy APP@VERSION --from ENV --to ENV` creates one");
        return Ok(());
    }
    let mut t = Table::new(["KEY", "FROM", "TO", "OPERATIONS", "STATUS", "CREATED", "BY"]);
    for p in &plans {
        t.row([
            p.key.clone(),
            p.source.clone(),
            p.target.clone(),
            p.operations
                .iter()
                .map(|o| match &o.version {
                    Some(v) => format!("{}@{v}", o.app),
                    None => format!("-{}", o.app),
                })
                .collect::<Vec<_>>()
                .join(" "),
            p.status.as_str().to_string(),
            ago(Some(p.created_at_ms)),
            or_dash(p.created_by.as_deref()),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

async fn show(a: KeyArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let plan = client.plan(&a.key).await?;
    let status = client.plan_status(&a.key, 0).await?;
    if a.json {
        return print_json(&serde_json::json!({"plan": plan, "status": status}));
    }
    println!("plan {}: {}", plan.key, describe(&plan));
    println!("status: {} — {}", plan.status.as_str(), status.info);
    if !plan.notes.is_empty() {
        println!("notes: {}", plan.notes);
    }
    let mut t = Table::new(["OP", "APP", "VERSION", "DIGEST"]);
    for o in &plan.operations {
        t.row([
            o.op.clone(),
            o.app.clone(),
            or_dash(o.version.as_deref()),
            o.digest
                .as_deref()
                .map(short_digest)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", t.render());
    if !status.frontends.is_empty() {
        let mut t = Table::new(["FRONT-END", "STAGE"]);
        for fe in &status.frontends {
            t.row([fe.frontend.clone(), frontend_stage(fe)]);
        }
        print!("{}", t.render());
    }
    for row in &status.log {
        println!(
            "{} {:?} {}",
            crate::output::rfc3339(row.instant_ms),
            row.kind,
            row.message
        );
    }
    Ok(())
}

async fn validate(a: KeyArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let v = client.validate_plan(&a.key).await?;
    if a.json {
        return print_json(&v);
    }
    print_validation(&v);
    if v.ok {
        println!("plan {} is valid", a.key);
        Ok(())
    } else {
        bail!("plan {} has {} conflict(s)", a.key, v.conflicts.len())
    }
}

async fn start(a: FollowArgs) -> anyhow::Result<()> {
    let client = a.key.console.client()?;
    let plan = client.start_plan(&a.key.key).await?;
    if a.wait {
        return follow(&client, &plan, a.key.json).await;
    }
    if a.key.json {
        return print_json(&plan);
    }
    println!("plan {} started: {}", plan.key, describe(&plan));
    Ok(())
}

async fn continue_plan(a: FollowArgs) -> anyhow::Result<()> {
    let client = a.key.console.client()?;
    let plan = client.continue_plan(&a.key.key).await?;
    if a.wait {
        return follow(&client, &plan, a.key.json).await;
    }
    if a.key.json {
        return print_json(&plan);
    }
    println!("plan {} continues: committing in {}", plan.key, plan.target);
    Ok(())
}

async fn abort(a: KeyArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let plan = client.abort_plan(&a.key).await?;
    if a.json {
        return print_json(&plan);
    }
    println!("plan {}: {}", plan.key, plan.status.as_str());
    Ok(())
}

async fn delete(a: KeyArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    client.delete_plan(&a.key).await?;
    if a.json {
        return print_json(&serde_json::json!({"deleted": a.key}));
    }
    println!("plan {} deleted", a.key);
    Ok(())
}
