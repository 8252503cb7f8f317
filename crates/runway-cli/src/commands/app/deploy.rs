//! `runway app deploy NAME@VERSION`

use anyhow::bail;
use clap::Args;
use runway_api::fleet::FrontendProgressState;
use runway_api::v1::{Deployment, DeploymentStatus};

use crate::connection::Connection;
use crate::output::fmt_ms;
use crate::parse::parse_app_at_version;

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// What to deploy, e.g. notes@0.1.0.
    #[arg(value_name = "NAME@VERSION")]
    pub target: String,
    /// If some front-ends fail to stage, disable them and deploy on the others
    /// (they catch up when enabled again) instead of failing the deployment.
    #[arg(long)]
    pub disable_failed_frontends: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let (app, version) = parse_app_at_version(&args.target)?;
    let client = args.conn.client().await?;
    let d = client
        .deploy_with(
            app.as_str(),
            &version.to_string(),
            args.disable_failed_frontends,
        )
        .await?;
    if d.status == DeploymentStatus::Failed {
        bail!(
            "deployment {} of {} {} failed: {}",
            d.id,
            d.app,
            d.version,
            d.error.as_deref().unwrap_or("no reason given")
        );
    }
    println!("{}", describe(&d, args.conn.env_url()));
    Ok(())
}

/// `deployed notes 0.1.0 (deployment 7, generation 3; stage 30 ms, commit 5.0 ms), running at …`
pub fn describe(d: &Deployment, env_url: &str) -> String {
    let mut detail = format!("deployment {}", d.id);
    if let Some(g) = d.generation {
        detail.push_str(&format!(", generation {g}"));
    }
    let mut times = Vec::new();
    if let Some(s) = d.stage_ms {
        times.push(format!("stage {}", fmt_ms(s as f64)));
    }
    if let Some(c) = d.commit_ms {
        times.push(format!("commit {}", fmt_ms(c as f64)));
    }
    if !times.is_empty() {
        detail.push_str("; ");
        detail.push_str(&times.join(", "));
    }
    let verb = if d.status == DeploymentStatus::Succeeded {
        "deployed"
    } else {
        "deploying"
    };
    let mut out = format!("{verb} {} {} ({detail})", d.app, d.version);
    if d.status == DeploymentStatus::Succeeded {
        out.push_str(&format!(", running at {env_url}/{}/", d.app));
    }
    // Front-ends that did not simply commit: say which, and why.
    for p in d
        .frontends
        .iter()
        .filter(|p| p.state != FrontendProgressState::Committed)
    {
        out.push_str(&format!("\n  front-end {}: {}", p.frontend, p.state));
        if let Some(error) = &p.error {
            out.push_str(&format!(" ({error})"));
        }
    }
    out
}
