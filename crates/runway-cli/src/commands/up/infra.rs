//! `runway up` (without `--single`): the seeds' typical infrastructure in
//! one process on SQLite — the console, and the environments dev, test and
//! prod (prod a farm of 2 front-ends behind a balancer), registered in
//! pipeline `main` (dev → test → prod).
//!
//! Each environment is a standalone environment (its own data directory,
//! catalogs, secrets key and admin token under `<data-dir>/<name>/`); the
//! console has `<data-dir>/console/`. The console registers the environments
//! through its own API, with each environment's admin token used once, like
//! `runway env add`. A second start on the same data directory finds
//! everything registered and only updates addresses that changed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::standalone::Standalone;
use anyhow::{Context, bail};
use runway_api::console::{AddEnvironment, CreatePipeline};
use runway_client::ConsoleClient;
use runway_console::{ConsoleConfig, ConsoleServer};

use super::{UpArgs, shutdown_signal, standalone_config};

/// The pipeline `runway up` creates.
pub const PIPELINE: &str = "main";

/// The environments of the infrastructure, in pipeline order: name and
/// front-ends (0 = one front-end on the environment's address).
pub const ENVIRONMENTS: [(&str, u32); 3] = [("dev", 0), ("test", 0), ("prod", 2)];

/// A running infrastructure.
pub struct Infrastructure {
    pub console: ConsoleServer,
    /// In pipeline order.
    pub environments: Vec<(String, Standalone)>,
    /// The console admin token, if this start created it.
    pub console_admin_token: Option<String>,
    pub data_dir: PathBuf,
}

/// The address of the `index`-th server: `listen` for the console, the
/// following ports for the environments (all free ports when the port is 0).
fn address(listen: SocketAddr, index: u16) -> anyhow::Result<SocketAddr> {
    if listen.port() == 0 {
        return Ok(listen);
    }
    let port = listen.port().checked_add(index).with_context(|| {
        format!(
            "--listen {listen}: the environments take the next {} ports, past 65535; pick a \
             lower port",
            ENVIRONMENTS.len()
        )
    })?;
    Ok(SocketAddr::new(listen.ip(), port))
}

/// The flags that describe one environment, refused without `--single`.
fn refuse_single_flags(args: &UpArgs) -> anyhow::Result<()> {
    let given = [
        ("--name", args.name.is_some()),
        ("--base-url", args.base_url.is_some()),
        ("--frontend-name", args.frontend_name.is_some()),
        ("--farm", args.farm.is_some()),
        ("--secrets-key-file", args.secrets_key_file.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        bail!(
            "{flag} describes one environment: add --single to run one environment (without \
             it, `runway up` runs the console with dev, test and prod, each with its own \
             settings and keys under --data-dir)"
        );
    }
    Ok(())
}

/// The secret in `path` (first line), for a start that did not create it.
fn read_secret(path: &Path) -> anyhow::Result<String> {
    crate::connection::read_token_file(path, "the admin token file")
}

impl Infrastructure {
    /// Starts the environments, then the console, then registers what is
    /// not registered yet. On failure, what was started is stopped.
    pub async fn start(args: &UpArgs) -> anyhow::Result<Infrastructure> {
        refuse_single_flags(args)?;
        let data_dir = args.data_dir.clone();
        runway_store::files::create_private_dir(&data_dir)
            .with_context(|| format!("failed to create data directory {}", data_dir.display()))?;
        let mut environments: Vec<(String, Standalone)> = Vec::new();
        let stop_all = |environments: Vec<(String, Standalone)>| async move {
            for (_, env) in environments {
                let _ = env.shutdown(Duration::from_secs(5)).await;
            }
        };
        for (i, (name, farm)) in ENVIRONMENTS.iter().enumerate() {
            let started = async {
                let listen = address(args.listen, i as u16 + 1)?;
                let mut config = standalone_config(args, &data_dir.join(name), listen)?;
                config.environment = name.to_string();
                config.farm = *farm;
                Standalone::start(config)
                    .await
                    .with_context(|| format!("failed to start environment {name}"))
            }
            .await;
            match started {
                Ok(env) => environments.push((name.to_string(), env)),
                Err(e) => {
                    stop_all(environments).await;
                    return Err(e);
                }
            }
        }
        let mut config = ConsoleConfig::new(data_dir.join("console"), args.listen);
        config.poll_interval = Duration::from_millis(args.console_poll_ms);
        config.audit_retention = Duration::from_secs(u64::from(args.audit_retention_days) * 86_400);
        config.metrics_token = args.connections.metrics_token.clone();
        config.connections = match args.connections.settings() {
            Ok(c) => c,
            Err(e) => {
                stop_all(environments).await;
                return Err(e);
            }
        };
        let console = match ConsoleServer::start(config)
            .await
            .context("failed to start the console")
        {
            Ok(console) => console,
            Err(e) => {
                stop_all(environments).await;
                return Err(e);
            }
        };
        let console_admin_token = console.admin_token().map(str::to_string);
        let infra = Infrastructure {
            console,
            environments,
            console_admin_token,
            data_dir,
        };
        if let Err(e) = infra.register().await {
            infra.shutdown(Duration::from_secs(5)).await.ok();
            return Err(e.context("failed to register the environments on the console"));
        }
        Ok(infra)
    }

    /// The console's URL.
    pub fn console_url(&self) -> String {
        format!("http://{}", self.console.addr())
    }

    /// The console admin token (from this start, or its file).
    pub fn console_token(&self) -> anyhow::Result<String> {
        match &self.console_admin_token {
            Some(t) => Ok(t.clone()),
            None => read_secret(&self.data_dir.join("console").join("admin.token")),
        }
    }

    /// Pipeline `main` and every environment in it, through the console's API.
    async fn register(&self) -> anyhow::Result<()> {
        let client = ConsoleClient::new(&self.console_url(), Some(self.console_token()?))?;
        if client.pipeline(PIPELINE).await.is_err() {
            client
                .create_pipeline(&CreatePipeline {
                    name: PIPELINE.into(),
                    description: "Development → Test → Production".into(),
                })
                .await?;
        }
        for (i, (name, env)) in self.environments.iter().enumerate() {
            let address = env.base_url().trim_end_matches('/').to_string();
            match client.environment(name).await {
                Ok(found) => {
                    if found.environment.address != address {
                        let store = self.console.console().store();
                        store
                            .set_environment_address(&found.environment.key, &address)
                            .await?;
                    }
                }
                Err(e) if e.status() == Some(404) => {
                    let token = match env.admin_token() {
                        Some(t) => t.to_string(),
                        None => read_secret(&self.data_dir.join(name).join("admin.token"))?,
                    };
                    client
                        .add_environment(&AddEnvironment {
                            name: name.clone(),
                            address,
                            token,
                            pipeline: Some(PIPELINE.into()),
                            order: Some(i as i64 + 1),
                            allow_insecure: false,
                            two_step: false,
                        })
                        .await
                        .with_context(|| format!("cannot register environment {name}"))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Stops the console first (no poll of a stopping environment), then
    /// the environments.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        let console = self.console.shutdown(grace).await;
        let mut result = console;
        for (name, env) in self.environments {
            if let Err(e) = env.shutdown(grace).await {
                result = result.and(Err(e.context(format!("environment {name}"))));
            }
        }
        result
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let infra = Infrastructure::start(&args).await?;
    println!("runway: console  listening on {}", infra.console_url());
    println!(
        "runway: console  in a browser: {}/ (sign in as the administrator below)",
        infra.console_url().trim_end_matches('/')
    );
    for (name, env) in &infra.environments {
        let farm = env.frontends().len();
        println!(
            "runway: {name:<8} listening on {}{}",
            env.base_url(),
            if farm > 1 {
                format!(" ({farm} front-ends behind a balancer)")
            } else {
                String::new()
            }
        );
    }
    let stages: Vec<&str> = infra.environments.iter().map(|(n, _)| n.as_str()).collect();
    println!("runway: pipeline {PIPELINE}: {}", stages.join(" → "));
    println!(
        "runway: data in {} (console/, {})",
        infra.data_dir.display(),
        stages
            .iter()
            .map(|n| format!("{n}/"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let console_dir = infra.data_dir.join("console");
    crate::commands::console::print_admin_token(infra.console_admin_token.as_deref(), &console_dir);
    crate::commands::user::print_first_admin(infra.console.admin_password(), &infra.console_url());
    println!(
        "runway: log in with `runway login {} --token-file {}`; environment admin tokens are in \
         {}/<env>/admin.token",
        infra.console_url(),
        console_dir.join("admin.token").display(),
        infra.data_dir.display()
    );
    println!("runway: ctrl-c to stop");
    shutdown_signal()
        .await
        .context("failed to listen for shutdown signals")?;
    let grace = Duration::from_millis(args.shutdown_grace_ms);
    println!(
        "runway: stopping (in-flight requests get up to {} ms)",
        grace.as_millis()
    );
    infra.shutdown(grace).await?;
    println!("runway: stopped");
    Ok(())
}
