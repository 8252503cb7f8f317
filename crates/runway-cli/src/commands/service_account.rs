//! `runway service-account create|list|rotate|revoke|role`: the console's
//! service accounts, each bound to a role. A token is printed once;
//! `rotate` prints a new one and keeps the old ones working for `--grace`
//! (default: none), `revoke` disables the account (every token refused) or
//! revokes one token. (`runway console account …` remains for the tokens
//! of one account.)

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use runway_api::console::{AccountTokenCreated, CreateServiceAccount};

use crate::commands::app::print_json;
use crate::commands::login::ConsoleArgs;
use crate::output::{Table, ago, rfc3339};

#[derive(Subcommand, Debug)]
pub enum ServiceAccountCommand {
    /// Create a service account bound to a role; its token is printed once.
    Create(CreateArgs),
    /// List the service accounts, their roles and tokens (last use).
    List(ListArgs),
    /// A new token (printed once); the old ones end after --grace.
    Rotate(RotateArgs),
    /// Disable the account (every token refused), or revoke one token.
    Revoke(RevokeArgs),
    /// Give the account another role.
    Role(RoleArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The account's name: lowercase letters, digits and '-'.
    pub name: String,
    /// Its role (required): Administrator, Developer, Tester, Operations or
    /// a custom one (`runway role list`); no more than you may hand out.
    #[arg(long)]
    pub role: String,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub use crate::commands::login::ListArgs;

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The account's name or key.
    pub name: String,
    /// How long the old tokens keep working (e.g. 10m, 1h; at most 7d).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub grace: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The account's name or key.
    pub name: String,
    /// Revoke only this token (its id, from `list`).
    #[arg(long, value_name = "ID")]
    pub token: Option<i64>,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct RoleArgs {
    /// The account's name or key.
    pub name: String,
    /// The new role.
    pub role: String,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// Prints a token just made (shown once), or the whole answer as JSON.
/// Also for `runway console account token`.
pub fn print_token(created: &AccountTokenCreated, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(created);
    }
    println!(
        "token {} ({}) of service account {} (shown once; store it now):",
        created.info.id, created.info.name, created.account
    );
    println!("{}", created.token);
    Ok(())
}

/// `runway service-account create` (and `runway console account create`).
pub async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let created = a
        .console
        .client()?
        .create_service_account(&CreateServiceAccount {
            name: a.name.clone(),
            description: a.description,
            role: Some(a.role.clone()),
        })
        .await
        .with_context(|| format!("cannot create service account {:?}", a.name))?;
    if !a.json {
        println!("created service account {} (role {})", a.name, a.role);
    }
    print_token(&created, a.json)
}

/// `runway service-account list` (and `runway console account list`).
pub async fn list(a: ListArgs) -> anyhow::Result<()> {
    let accounts = a.console.client()?.service_accounts().await?;
    if a.json {
        return print_json(&accounts);
    }
    if accounts.is_empty() {
        println!(
            "no service accounts; create one with `runway service-account create NAME --role ROLE`"
        );
        return Ok(());
    }
    let mut t = Table::new(["ACCOUNT", "ROLE", "STATE", "TOKEN", "LAST USED", "ENDS"]);
    for acc in &accounts {
        let state = if acc.disabled_at_ms.is_some() {
            "disabled"
        } else {
            "active"
        };
        if acc.tokens.is_empty() {
            t.row([acc.name.as_str(), acc.role.as_str(), state, "-", "-", "-"]);
        }
        for tok in &acc.tokens {
            let ends = match (tok.revoked_at_ms, tok.expires_at_ms) {
                (Some(at), _) => format!("revoked {}", ago(Some(at))),
                (None, Some(at)) => rfc3339(at),
                (None, None) => "-".into(),
            };
            t.row([
                acc.name.clone(),
                acc.role.clone(),
                state.to_string(),
                tok.id.to_string(),
                ago(tok.last_used_at_ms),
                ends,
            ]);
        }
    }
    print!("{}", t.render());
    Ok(())
}

pub async fn run(cmd: ServiceAccountCommand) -> anyhow::Result<()> {
    match cmd {
        ServiceAccountCommand::Create(a) => create(a).await,
        ServiceAccountCommand::List(a) => list(a).await,
        ServiceAccountCommand::Rotate(a) => {
            let created = a
                .console
                .client()?
                .rotate_account_tokens(&a.name, a.grace.as_secs())
                .await
                .with_context(|| format!("cannot rotate the tokens of {:?}", a.name))?;
            if !a.json {
                if a.grace.is_zero() {
                    println!("the old tokens of {} are refused from now on", a.name);
                } else {
                    println!(
                        "the old tokens of {} keep working for {}",
                        a.name,
                        humantime::format_duration(a.grace)
                    );
                }
            }
            print_token(&created, a.json)
        }
        ServiceAccountCommand::Revoke(a) => {
            let client = a.console.client()?;
            match a.token {
                Some(id) => {
                    client
                        .revoke_account_token(&a.name, id)
                        .await
                        .with_context(|| format!("cannot revoke token {id} of {:?}", a.name))?;
                    println!("token {id} of service account {} revoked", a.name);
                }
                None => {
                    client
                        .disable_service_account(&a.name)
                        .await
                        .with_context(|| format!("cannot revoke service account {:?}", a.name))?;
                    println!(
                        "service account {} disabled: every token of it is refused",
                        a.name
                    );
                }
            }
            Ok(())
        }
        ServiceAccountCommand::Role(a) => {
            let acc = a
                .console
                .client()?
                .set_account_role(&a.name, &a.role)
                .await
                .with_context(|| {
                    format!("cannot give service account {:?} role {:?}", a.name, a.role)
                })?;
            println!("service account {} now has role {}", acc.name, acc.role);
            Ok(())
        }
    }
}
