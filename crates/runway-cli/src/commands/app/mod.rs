//! `runway app …`

use clap::Subcommand;
use runway_api::v1::{PropertySource, PropertyView};

use crate::output::Table;

pub mod build;
pub mod config;
pub mod delete;
pub mod deploy;
pub mod list;
pub mod new;
pub mod publish;
pub mod show;
pub mod undeploy;
pub mod versions;
pub mod zone;

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Create a new app from the Rust template.
    New(new::NewArgs),
    /// Build the app (cargo, wasm32-wasip2) and pack it into a .rwp package.
    Build(build::BuildArgs),
    /// Upload a package to the environment and (by default) deploy it.
    Publish(publish::PublishArgs),
    /// List the environment's apps.
    List(list::ListArgs),
    /// Show one app: running version, limits, properties, timers.
    Show(show::ShowArgs),
    /// List the published versions of an app.
    Versions(versions::VersionsArgs),
    /// Make a published version the running one.
    Deploy(deploy::DeployArgs),
    /// Take an app out of the routing table (its versions, data and
    /// properties stay).
    Undeploy(undeploy::UndeployArgs),
    /// Delete a published version that is not running.
    Delete(delete::DeleteArgs),
    /// Show or change an app's configuration (property values).
    Config(config::ConfigArgs),
    /// Deploy an app to a deployment zone (a deployment when it runs: it
    /// moves to that zone's front-ends).
    Zone(zone::ZoneArgs),
}

pub async fn run(cmd: AppCommand) -> anyhow::Result<()> {
    match cmd {
        AppCommand::New(a) => new::run(a).await,
        AppCommand::Build(a) => build::run(a).await,
        AppCommand::Publish(a) => publish::run(a).await,
        AppCommand::List(a) => list::run(a).await,
        AppCommand::Show(a) => show::run(a).await,
        AppCommand::Versions(a) => versions::run(a).await,
        AppCommand::Deploy(a) => deploy::run(a).await,
        AppCommand::Undeploy(a) => undeploy::run(a).await,
        AppCommand::Delete(a) => delete::run(a).await,
        AppCommand::Config(a) => config::run(a).await,
        AppCommand::Zone(a) => zone::run(a).await,
    }
}

/// NAME TYPE VALUE SOURCE REQUIRED DESCRIPTION; secret values show as `(secret)`.
pub fn properties_table(props: &[PropertyView]) -> Table {
    let mut t = Table::new(["NAME", "TYPE", "VALUE", "SOURCE", "REQUIRED", "DESCRIPTION"]);
    for p in props {
        let value = if p.secret {
            if p.source == PropertySource::Unset {
                "-"
            } else {
                "(secret)"
            }
            .to_owned()
        } else {
            p.value.clone().unwrap_or_else(|| "-".to_owned())
        };
        t.row([
            p.name.clone(),
            p.kind.clone(),
            value,
            p.source.to_string(),
            if p.required { "yes" } else { "no" }.to_owned(),
            p.description.clone().unwrap_or_default(),
        ]);
    }
    t
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_values() {
        let p = |name: &str, secret: bool, value: Option<&str>, source| PropertyView {
            name: name.into(),
            kind: "string".into(),
            required: false,
            secret,
            description: None,
            value: value.map(Into::into),
            source,
        };
        let t = properties_table(&[
            p("greeting", false, Some("Hi"), PropertySource::Environment),
            p("api_key", true, Some("leaked"), PropertySource::Environment),
            p("other_key", true, None, PropertySource::Unset),
        ])
        .render();
        assert!(t.contains("(secret)"), "{t}");
        assert!(!t.contains("leaked"), "{t}");
        let last = t.lines().last().unwrap();
        assert!(last.starts_with("other_key  string  -"), "{t}");
    }
}
