//! `runway user add|list|show|disable|enable|unlock|passwd|role`: the console's
//! IT users. Passwords are read from stdin (`--password-stdin`) or prompted
//! without echo; left out on `add`, the console generates one and it is
//! printed once.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use runway_api::console::identity::{ChangePassword, CreateUser, UserView};

use crate::commands::app::print_json;
use crate::commands::login::{ConsoleArgs, print_listing, print_record};
use crate::output::{ago, fields, rfc3339};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (an administrator's right).
    Add(AddArgs),
    /// List the users.
    List(ListArgs),
    /// Show one user.
    Show(NameArgs),
    /// Disable a user: it cannot log in, and its sessions end.
    Disable(NameArgs),
    /// Enable a disabled user.
    Enable(NameArgs),
    /// Clear a user's lockout after too many failed logins.
    Unlock(NameArgs),
    /// Change a password: your own (asks for the current one), or as an
    /// administrator anyone's (without --password-stdin a new one is generated
    /// and printed once). Ends the user's other sessions.
    Passwd(PasswdArgs),
    /// Give a user another role (built-in or custom; `runway role list`).
    Role(RoleArgs),
}

#[derive(Args, Debug)]
pub struct RoleArgs {
    /// The username or key.
    pub name: String,
    /// The new role.
    pub role: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The username: lowercase letters, digits and '-', starting with a letter.
    pub name: String,
    #[arg(long)]
    pub email: String,
    /// Administrator, Developer, Tester, Operations or a custom role.
    #[arg(long)]
    pub role: String,
    #[arg(long, default_value = "")]
    pub display_name: String,
    /// Read the password from the first line of stdin (else one is generated
    /// and printed once).
    #[arg(long)]
    pub password_stdin: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

pub use crate::commands::login::ListArgs;

#[derive(Args, Debug)]
pub struct NameArgs {
    /// The username or key.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// The username [default: the logged-in user].
    pub name: Option<String>,
    /// Read the password(s) from stdin: for your own, the current one on the
    /// first line and the new one on the second; for another user, the new one.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// Reads one line of stdin (without its line end).
pub fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from stdin"))?;
    if n == 0 {
        bail!("--password-stdin: stdin ended before the {what}");
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks for a password on the terminal without echo.
pub fn prompt_password(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: give it with --password-stdin");
    }
    rpassword::prompt_password(prompt).context("cannot read the password from the terminal")
}

fn print_user(u: &UserView) {
    println!(
        "{}",
        fields(&[
            ("user", u.name.clone()),
            ("key", u.key.clone()),
            ("display name", u.display_name.clone()),
            ("email", u.email.clone()),
            ("role", u.role.clone()),
            (
                "state",
                if u.locked {
                    format!("{} (locked)", u.state)
                } else {
                    u.state.clone()
                }
            ),
            ("created", rfc3339(u.created_at_ms)),
            (
                "created by",
                u.created_by.clone().unwrap_or_else(|| "-".into())
            ),
            ("password changed", rfc3339(u.password_changed_at_ms)),
        ])
    );
}

pub async fn run(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add(a) => {
            let password = if a.password_stdin {
                Some(read_stdin_line("password")?)
            } else {
                None
            };
            let created = a
                .console
                .client()?
                .create_user(&CreateUser {
                    name: a.name.clone(),
                    email: a.email,
                    role: a.role,
                    display_name: a.display_name,
                    password,
                })
                .await
                .with_context(|| format!("cannot create user {:?}", a.name))?;
            if a.json {
                return print_json(&created);
            }
            println!(
                "created user {} (role {})",
                created.user.name, created.user.role
            );
            if let Some(p) = &created.password {
                println!("password (shown once; give it to the user now):");
                println!("{p}");
            }
            Ok(())
        }
        UserCommand::List(a) => {
            let users = a.console.client()?.users().await?;
            print_listing(
                &users,
                a.json,
                ["USER", "ROLE", "STATE", "EMAIL", "CREATED"],
                |u| {
                    let state = if u.locked {
                        format!("{} (locked)", u.state)
                    } else {
                        u.state.clone()
                    };
                    [
                        u.name.clone(),
                        u.role.clone(),
                        state,
                        u.email.clone(),
                        ago(Some(u.created_at_ms)),
                    ]
                },
            )
        }
        UserCommand::Show(a) => {
            let u = a.console.client()?.user(&a.name).await?;
            print_record(&u, a.json, print_user)
        }
        UserCommand::Disable(a) => action(a, "disable", "disabled (its sessions ended)").await,
        UserCommand::Enable(a) => action(a, "enable", "enabled").await,
        UserCommand::Unlock(a) => action(a, "unlock", "unlocked").await,
        UserCommand::Passwd(a) => passwd(a).await,
        UserCommand::Role(a) => {
            let u = a
                .console
                .client()?
                .set_user_role(&a.name, &a.role)
                .await
                .with_context(|| format!("cannot give user {:?} role {:?}", a.name, a.role))?;
            if a.json {
                return print_json(&u);
            }
            println!("user {} now has role {}", u.name, u.role);
            Ok(())
        }
    }
}

async fn action(a: NameArgs, verb: &str, done: &str) -> anyhow::Result<()> {
    let u = a
        .console
        .client()?
        .user_action(&a.name, verb)
        .await
        .with_context(|| format!("cannot {verb} user {:?}", a.name))?;
    if a.json {
        return print_json(&u);
    }
    println!("user {} {done}", u.name);
    Ok(())
}

async fn passwd(a: PasswdArgs) -> anyhow::Result<()> {
    let client = a.console.client()?;
    let me = client.info().await?.principal;
    let name = a.name.clone().unwrap_or_else(|| me.name.clone());
    let own = me.kind == "user" && name == me.name;
    let (current, new) = match (own, a.password_stdin) {
        (true, true) => (
            Some(read_stdin_line("current password")?),
            Some(read_stdin_line("new password")?),
        ),
        (true, false) => {
            let current = prompt_password("current password: ")?;
            let new = prompt_password("new password: ")?;
            if prompt_password("new password again: ")? != new {
                bail!("the two new passwords differ; nothing was changed");
            }
            (Some(current), Some(new))
        }
        (false, true) => (None, Some(read_stdin_line("new password")?)),
        (false, false) => (None, None),
    };
    let changed = client
        .change_password(&name, &ChangePassword { current, new })
        .await
        .with_context(|| format!("cannot change the password of user {name:?}"))?;
    println!(
        "password of user {name} changed; {} other session(s) ended",
        changed.sessions_ended
    );
    if let Some(p) = &changed.password {
        println!("new password (shown once; give it to the user now):");
        println!("{p}");
    }
    Ok(())
}

/// Prints the first administrator user's password if this start created it
/// (`runway console serve`, `runway up`): shown once, stored nowhere.
pub fn print_first_admin(password: Option<&str>, console_url: &str) {
    if let Some(password) = password {
        println!(
            "runway: first administrator user `{}` created; its password (shown once, \
             stored nowhere; change it with `runway user passwd`):",
            runway_console::users::FIRST_ADMIN_USER
        );
        println!("{password}");
        println!(
            "runway: log in with `runway login {console_url} --user {}`",
            runway_console::users::FIRST_ADMIN_USER
        );
    }
}
