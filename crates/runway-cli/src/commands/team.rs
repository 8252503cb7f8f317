//! `runway team create|list|show|delete|add-app|remove-app|add-member|remove-member`:
//! the console's teams. Each member has a role inside the team that applies
//! to the team's apps only (`--member ada=Developer`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use runway_api::console::identity::{CreateTeam, TeamMember, TeamView};

use crate::commands::app::print_json;
use crate::commands::login::{ConsoleArgs, joined_or_dash, print_listing, print_record};
use crate::output::{fields, rfc3339};

#[derive(Subcommand, Debug)]
pub enum TeamCommand {
    /// Create a team (needs the right to manage users and roles).
    Create(CreateArgs),
    /// List the teams (yours, or all if you may manage users).
    List(ListArgs),
    /// Show one team.
    Show(NameArgs),
    /// Delete a team.
    Delete(NameArgs),
    /// Add an app to a team.
    AddApp(AppArgs),
    /// Remove an app from a team.
    RemoveApp(AppArgs),
    /// Add a member to a team (or change its role there): MEMBER=ROLE.
    AddMember(MemberArgs),
    /// Remove a member from a team.
    RemoveMember(RemoveMemberArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The team's name: lowercase letters, digits and '-'.
    pub name: String,
    /// An app of the team, repeatable.
    #[arg(long = "app", value_name = "APP")]
    pub apps: Vec<String>,
    /// A member and its role in the team, repeatable: --member ada=Developer.
    #[arg(long = "member", value_name = "USER=ROLE")]
    pub members: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub use crate::commands::login::ListArgs;

#[derive(Args, Debug)]
pub struct NameArgs {
    /// The team's name or key.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct AppArgs {
    /// The team's name or key.
    pub team: String,
    /// The app's name.
    pub app: String,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct MemberArgs {
    /// The team's name or key.
    pub team: String,
    /// USER=ROLE (a user's or service account's name, and its role in the team).
    pub member: String,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct RemoveMemberArgs {
    /// The team's name or key.
    pub team: String,
    /// The member's name.
    pub member: String,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// `USER=ROLE`.
fn parse_member(s: &str) -> anyhow::Result<TeamMember> {
    match s.split_once('=') {
        Some((member, role)) if !member.trim().is_empty() && !role.trim().is_empty() => {
            Ok(TeamMember {
                member: member.trim().to_string(),
                role: role.trim().to_string(),
            })
        }
        _ => bail!("member {s:?}: expected USER=ROLE, e.g. ada=Developer"),
    }
}

fn members_text(t: &TeamView) -> String {
    joined_or_dash(
        t.members.iter().map(|m| format!("{}={}", m.member, m.role)),
        " ",
    )
}

fn apps_text(t: &TeamView) -> String {
    joined_or_dash(&t.apps, " ")
}

fn print_team(t: &TeamView) {
    println!(
        "{}",
        fields(&[
            ("team", t.name.clone()),
            ("key", t.key.clone()),
            ("apps", apps_text(t)),
            ("members", members_text(t)),
            ("created", rfc3339(t.created_at_ms)),
            (
                "created by",
                t.created_by.clone().unwrap_or_else(|| "-".into())
            ),
        ])
    );
}

pub async fn run(cmd: TeamCommand) -> anyhow::Result<()> {
    match cmd {
        TeamCommand::Create(a) => {
            let members = a
                .members
                .iter()
                .map(|m| parse_member(m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let t = a
                .console
                .client()?
                .create_team(&CreateTeam {
                    name: a.name.clone(),
                    apps: a.apps,
                    members,
                })
                .await
                .with_context(|| format!("cannot create team {:?}", a.name))?;
            if a.json {
                return print_json(&t);
            }
            println!(
                "created team {} (apps: {}; members: {})",
                t.name,
                apps_text(&t),
                members_text(&t)
            );
            Ok(())
        }
        TeamCommand::List(a) => {
            let teams = a.console.client()?.teams().await?;
            print_listing(&teams, a.json, ["TEAM", "APPS", "MEMBERS"], |team| {
                [team.name.clone(), apps_text(team), members_text(team)]
            })
        }
        TeamCommand::Show(a) => {
            let t = a.console.client()?.team(&a.name).await?;
            print_record(&t, a.json, print_team)
        }
        TeamCommand::Delete(a) => {
            a.console
                .client()?
                .delete_team(&a.name)
                .await
                .with_context(|| format!("cannot delete team {:?}", a.name))?;
            println!("deleted team {}", a.name);
            Ok(())
        }
        TeamCommand::AddApp(a) => {
            let t = a
                .console
                .client()?
                .add_team_app(&a.team, &a.app)
                .await
                .with_context(|| format!("cannot add app {:?} to team {:?}", a.app, a.team))?;
            println!("team {} apps: {}", t.name, apps_text(&t));
            Ok(())
        }
        TeamCommand::RemoveApp(a) => {
            let t = a
                .console
                .client()?
                .remove_team_app(&a.team, &a.app)
                .await
                .with_context(|| format!("cannot remove app {:?} from team {:?}", a.app, a.team))?;
            println!("team {} apps: {}", t.name, apps_text(&t));
            Ok(())
        }
        TeamCommand::AddMember(a) => {
            let member = parse_member(&a.member)?;
            let t = a
                .console
                .client()?
                .set_team_member(&a.team, &member)
                .await
                .with_context(|| {
                    format!("cannot add member {:?} to team {:?}", member.member, a.team)
                })?;
            println!("team {} members: {}", t.name, members_text(&t));
            Ok(())
        }
        TeamCommand::RemoveMember(a) => {
            let t = a
                .console
                .client()?
                .remove_team_member(&a.team, &a.member)
                .await
                .with_context(|| {
                    format!("cannot remove member {:?} from team {:?}", a.member, a.team)
                })?;
            println!("team {} members: {}", t.name, members_text(&t));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_parse() {
        let m = super::parse_member("ada=Developer").unwrap();
        assert_eq!((m.member.as_str(), m.role.as_str()), ("ada", "Developer"));
        for bad in ["ada", "=Developer", "ada="] {
            assert!(super::parse_member(bad).is_err(), "{bad}");
        }
    }
}
