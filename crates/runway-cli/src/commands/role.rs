//! `runway role list|show|create|delete`: the console's roles. A role gives
//! a level per environment (`--level prod=monitor`), per environment class
//! (`--level @prod=full-control`; `@dev`, `@test`, `@prod` from the
//! pipeline) or for every other environment (`--level '*'=monitor`), and
//! optionally the rights to manage infrastructure and users. Built-in
//! roles cannot be changed.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use runway_api::console::identity::{CreateRole, RoleLevel, RoleView};

use crate::commands::app::print_json;
use crate::commands::login::{ConsoleArgs, joined_or_dash, print_listing, print_record};
use crate::output::{fields, rfc3339};

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// List the roles (built-in first).
    List(ListArgs),
    /// Show one role's levels and rights.
    Show(NameArgs),
    /// Create a custom role (needs the right to manage users and roles).
    Create(CreateArgs),
    /// Delete a custom role nobody holds.
    Delete(NameArgs),
}

pub use crate::commands::login::ListArgs;

#[derive(Args, Debug)]
pub struct NameArgs {
    /// The role's name (any case).
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The role's name: letters, digits and '-', starting with a letter.
    pub name: String,
    /// SCOPE=LEVEL, repeatable: SCOPE is an environment's name, @dev, @test,
    /// @prod or '*'; LEVEL is no-access, monitor, change-and-deploy or
    /// full-control. The most specific entry wins; none: no access.
    #[arg(long = "level", value_name = "SCOPE=LEVEL")]
    pub levels: Vec<String>,
    /// The right to manage environments and pipelines.
    #[arg(long)]
    pub manage_infrastructure: bool,
    /// The right to manage users, roles, teams and service accounts.
    #[arg(long)]
    pub manage_users: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// `SCOPE=LEVEL` (the console checks both parts).
fn parse_level(s: &str) -> anyhow::Result<RoleLevel> {
    match s.split_once('=') {
        Some((scope, level)) if !scope.trim().is_empty() && !level.trim().is_empty() => {
            Ok(RoleLevel {
                scope: scope.trim().to_string(),
                level: level.trim().to_string(),
            })
        }
        _ => bail!(
            "--level {s:?}: expected SCOPE=LEVEL, e.g. --level prod=monitor, --level \
             @dev=change-and-deploy or --level '*'=monitor"
        ),
    }
}

fn levels_text(r: &RoleView) -> String {
    if r.levels.is_empty() {
        return "no access anywhere".into();
    }
    joined_or_dash(
        r.levels.iter().map(|l| format!("{}={}", l.scope, l.level)),
        " ",
    )
}

fn rights_text(r: &RoleView) -> String {
    let rights = [
        (r.manage_infrastructure, "manage infrastructure"),
        (r.manage_users, "manage users and roles"),
    ];
    joined_or_dash(
        rights.iter().filter(|(has, _)| *has).map(|(_, name)| *name),
        ", ",
    )
}

fn print_role(r: &RoleView) {
    println!(
        "{}",
        fields(&[
            ("role", r.name.clone()),
            (
                "kind",
                if r.built_in { "built-in" } else { "custom" }.to_string()
            ),
            ("levels", levels_text(r)),
            ("rights", rights_text(r)),
            (
                "created",
                r.created_at_ms.map_or_else(|| "-".into(), rfc3339)
            ),
        ])
    );
}

pub async fn run(cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::List(a) => {
            let roles = a.console.client()?.roles().await?;
            print_listing(&roles, a.json, ["ROLE", "KIND", "LEVELS", "RIGHTS"], |r| {
                [
                    r.name.clone(),
                    if r.built_in { "built-in" } else { "custom" }.to_string(),
                    levels_text(r),
                    rights_text(r),
                ]
            })
        }
        RoleCommand::Show(a) => {
            let r = a.console.client()?.role(&a.name).await?;
            print_record(&r, a.json, print_role)
        }
        RoleCommand::Create(a) => {
            let levels = a
                .levels
                .iter()
                .map(|l| parse_level(l))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let r = a
                .console
                .client()?
                .create_role(&CreateRole {
                    name: a.name.clone(),
                    levels,
                    manage_infrastructure: a.manage_infrastructure,
                    manage_users: a.manage_users,
                })
                .await
                .with_context(|| format!("cannot create role {:?}", a.name))?;
            if a.json {
                return print_json(&r);
            }
            println!("created role {}: {}", r.name, levels_text(&r));
            Ok(())
        }
        RoleCommand::Delete(a) => {
            a.console
                .client()?
                .delete_role(&a.name)
                .await
                .with_context(|| format!("cannot delete role {:?}", a.name))?;
            println!("deleted role {}", a.name);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn levels_parse() {
        let l = super::parse_level("@prod=full-control").unwrap();
        assert_eq!(
            (l.scope.as_str(), l.level.as_str()),
            ("@prod", "full-control")
        );
        for bad in ["prod", "=monitor", "prod="] {
            let err = super::parse_level(bad).unwrap_err().to_string();
            assert!(err.contains("SCOPE=LEVEL"), "{err}");
        }
    }
}
