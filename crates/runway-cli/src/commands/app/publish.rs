//! `runway app publish [PATH] [--no-deploy]`

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use runway_api::v1::{DeploymentStatus, PublishResult};
use runway_manifest::{Package, PackageError};

use crate::connection::Connection;
use crate::output::{fmt_duration, fmt_ms, human_size};

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// A .rwp package, or an app directory to pack (not build) first.
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// Only upload and compile; keep the running version.
    #[arg(long)]
    pub no_deploy: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<()> {
    // Local problems first: they need no environment and no token.
    let bytes = load_package(&args.path)?;
    let client = args.conn.client().await?;
    let total = bytes.len() as u64;
    let deploy = !args.no_deploy;

    let pb = progress_bar(total);
    let upload_done: Arc<Mutex<Option<Instant>>> = Arc::default();
    let on_progress = {
        let pb = pb.clone();
        let upload_done = upload_done.clone();
        move |sent: u64, total: u64| {
            pb.set_position(sent);
            if sent >= total {
                *upload_done.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                pb.set_style(spinner_style());
                pb.set_message(if deploy {
                    "validating, compiling and deploying…"
                } else {
                    "validating and compiling…"
                });
                pb.enable_steady_tick(Duration::from_millis(100));
            }
        }
    };
    let start = Instant::now();
    let res = client
        .publish(bytes, deploy, Some(Box::new(on_progress)))
        .await;
    pb.finish_and_clear();
    let (result, _created) = res?;
    let upload = upload_done
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map_or_else(|| start.elapsed(), |t| t - start);

    let steps = [
        (
            "upload",
            format!("{}  ({})", fmt_duration(upload), human_size(total)),
        ),
        ("validate", fmt_ms(result.validate_ms as f64)),
        (
            "compile",
            if result.compiled {
                fmt_ms(result.compile_ms as f64)
            } else {
                "cached".to_owned()
            },
        ),
        ("deploy", deploy_step(&result, deploy)),
    ];
    for (name, value) in &steps {
        println!("{name:<9} {value}");
    }
    println!("{}", summary(&result, deploy, args.conn.env_url()));
    if let Some(d) = &result.deployment
        && d.status == DeploymentStatus::Failed
    {
        bail!(
            "published {} {} but deployment {} failed: {}",
            result.app,
            result.version,
            d.id,
            d.error.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// The package bytes: a `.rwp` file as is, or a directory packed in memory.
fn load_package(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read package {}: {e}; pass a .rwp file made by `runway app build` or an app directory",
            path.display()
        )
    })?;
    if meta.is_dir() {
        // Packs what is there, without building. A missing component gives
        // Package's own error (naming the file); add how to build with runway.
        return match Package::from_dir(path) {
            Ok(pkg) => Ok(pkg.to_bytes()),
            Err(e @ PackageError::ComponentMissing { .. }) => Err(anyhow::anyhow!(
                "{e}; or run `runway app build --dir {}`, which builds and packs it",
                path.display()
            )),
            Err(e) => Err(e.into()),
        };
    }
    std::fs::read(path).with_context(|| format!("cannot read package {}", path.display()))
}

fn deploy_step(result: &PublishResult, deploy: bool) -> String {
    if !deploy {
        return "skipped (--no-deploy)".to_owned();
    }
    match &result.deployment {
        None => "-".to_owned(),
        Some(d) if d.status == DeploymentStatus::Failed => "failed".to_owned(),
        Some(d) => match (d.stage_ms, d.commit_ms) {
            (None, None) => d.status.to_string(),
            (s, c) => fmt_ms((s.unwrap_or(0) + c.unwrap_or(0)) as f64),
        },
    }
}

/// `published notes 0.1.0 sha256:… (new), running at http://…/notes/`
pub fn summary(result: &PublishResult, deploy: bool, env_url: &str) -> String {
    let state = if result.created { "new" } else { "unchanged" };
    let head = format!(
        "published {} {} {} ({state})",
        result.app, result.version, result.digest
    );
    match &result.deployment {
        Some(d) if d.status == DeploymentStatus::Succeeded => {
            format!("{head}, running at {env_url}/{}/", result.app)
        }
        _ if !deploy => format!(
            "{head}; deploy it with: runway app deploy {}@{}",
            result.app, result.version
        ),
        _ => head,
    }
}

/// Bars only on an interactive terminal outside CI.
fn progress_bar(total: u64) -> ProgressBar {
    let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let target = if interactive {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) =
        ProgressStyle::with_template("uploading [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runway_api::v1::{Deployment, OperationKind};

    fn result(created: bool, deployment: Option<Deployment>) -> PublishResult {
        PublishResult {
            app: "notes".into(),
            version: "0.1.0".into(),
            digest: "sha256:abc".into(),
            component_digest: "sha256:def".into(),
            artifact_digest: "sha256:123".into(),
            created,
            compiled: true,
            validate_ms: 4,
            compile_ms: 812,
            deployment,
        }
    }

    fn deployment(status: DeploymentStatus) -> Deployment {
        Deployment {
            id: 3,
            app: "notes".into(),
            version: "0.1.0".into(),
            kind: OperationKind::Deploy,
            status,
            operations: Vec::new(),
            expires_at_ms: None,
            error: None,
            generation: Some(2),
            started_at_ms: 0,
            finished_at_ms: Some(40),
            stage_ms: Some(30),
            commit_ms: Some(5),
            frontends: Vec::new(),
        }
    }

    #[test]
    fn summary_lines() {
        let env = "http://127.0.0.1:8080";
        assert_eq!(
            summary(
                &result(true, Some(deployment(DeploymentStatus::Succeeded))),
                true,
                env
            ),
            "published notes 0.1.0 sha256:abc (new), running at http://127.0.0.1:8080/notes/"
        );
        assert_eq!(
            summary(&result(false, None), false, env),
            "published notes 0.1.0 sha256:abc (unchanged); deploy it with: runway app deploy notes@0.1.0"
        );
        assert_eq!(
            deploy_step(
                &result(true, Some(deployment(DeploymentStatus::Succeeded))),
                true
            ),
            "35.0 ms"
        );
        assert_eq!(
            deploy_step(&result(true, None), false),
            "skipped (--no-deploy)"
        );
    }

    #[test]
    fn missing_package_names_the_path() {
        let e = load_package(Path::new("/nonexistent/x.rwp")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("/nonexistent/x.rwp"), "{msg}");
    }
}
