//! `runway email settings …`, `runway email list [--state S] [--json]`,
//! `runway email show ID`, `runway email resend ID`: the environment's SMTP
//! settings and the outbox apps write through `runway:email/outbox`.

use anyhow::bail;
use clap::{Args, Subcommand};
use runway_api::v1::{
    EmailList, EmailQuery, EmailSettingsChange, EmailSettingsView, EmailState, SmtpSecurity,
};

use crate::commands::app::print_json;
use crate::commands::user::read_stdin_line;
use crate::connection::Connection;
use crate::output::{Table, fields, rfc3339};

#[derive(Subcommand, Debug)]
pub enum EmailCommand {
    /// Show the SMTP settings, set them (`--smtp URL --from ADDRESS
    /// [--starttls|--tls] [--user U --password-stdin]`), and/or send a test
    /// message (`--test ADDRESS`). The password is stored encrypted with the
    /// environment's secrets key and never shown.
    Settings(SettingsArgs),
    /// Emails, newest first.
    List(ListArgs),
    /// One email in full (JSON).
    Show(IdArgs),
    /// Queue a copy of a sent or failed email (a new id and Message-ID).
    Resend(IdArgs),
}

#[derive(Args, Debug)]
pub struct SettingsArgs {
    /// The SMTP server: smtp://host[:port] (port 25 when absent), or
    /// smtps://host[:port] for TLS from the first byte (port 465).
    #[arg(long, requires = "from")]
    pub smtp: Option<String>,
    /// The sender of every email: user@example.com or "Name <user@example.com>".
    #[arg(long, requires = "smtp")]
    pub from: Option<String>,
    /// Upgrade with STARTTLS, required (usually port 587).
    #[arg(long, conflicts_with = "tls", requires = "smtp")]
    pub starttls: bool,
    /// TLS from the first byte (usually port 465).
    #[arg(long, requires = "smtp")]
    pub tls: bool,
    /// Authenticate as this user (needs --starttls or --tls).
    #[arg(long, requires = "smtp")]
    pub user: Option<String>,
    /// Read the SMTP password from the first line of stdin. Without it, the
    /// stored password is kept while --user stays the same.
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
    /// Send a test message to this address now (after setting, if settings
    /// are given) and print the SMTP server's answer.
    #[arg(long, value_name = "ADDRESS")]
    pub test: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this app's emails.
    pub app: Option<String>,
    /// Only emails in this state.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<EmailState>,
    /// At most this many, newest first (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The email id (from `runway email list`).
    pub id: String,
    #[command(flatten)]
    pub conn: Connection,
}

fn parse_state(s: &str) -> Result<EmailState, String> {
    EmailState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = EmailState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown email state {s:?}; use one of {}", all.join(", "))
    })
}

pub async fn run(cmd: EmailCommand) -> anyhow::Result<()> {
    match cmd {
        EmailCommand::Settings(args) => settings(args).await,
        EmailCommand::List(list) => {
            let query = EmailQuery {
                app: list.app.clone(),
                state: list.state,
                limit: Some(list.limit),
            };
            let emails = list.conn.client().await?.emails(&query).await?;
            if list.json {
                return print_json(&emails);
            }
            print!("{}", render(&emails));
            Ok(())
        }
        EmailCommand::Show(a) => print_json(&a.conn.client().await?.email(&a.id).await?),
        EmailCommand::Resend(a) => {
            let copy = a.conn.client().await?.resend_email(&a.id).await?;
            println!(
                "email {} is queued again as {} (Message-ID {})",
                a.id, copy.id, copy.message_id
            );
            Ok(())
        }
    }
}

async fn settings(args: SettingsArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let mut shown = None;
    if let (Some(smtp), Some(from)) = (&args.smtp, &args.from) {
        let password = if args.password_stdin {
            let p = read_stdin_line("SMTP password")?;
            if p.is_empty() {
                bail!("--password-stdin: the first line of stdin is empty; give the SMTP password");
            }
            Some(p)
        } else {
            None
        };
        let change = EmailSettingsChange {
            smtp: smtp.clone(),
            security: if args.tls {
                Some(SmtpSecurity::Tls)
            } else if args.starttls {
                Some(SmtpSecurity::Starttls)
            } else {
                None
            },
            from: from.clone(),
            user: args.user.clone(),
            password,
        };
        let stored = client.set_email_settings(&change).await?;
        if !args.json {
            println!("email settings saved");
        }
        shown = Some(stored);
    }
    if let Some(to) = &args.test {
        let result = client.test_email(to).await?;
        if args.json {
            return print_json(&result);
        }
        println!(
            "test message to {to} accepted by the SMTP server: {} (Message-ID {})",
            result.server_answer, result.message_id
        );
        return Ok(());
    }
    let settings = match shown {
        Some(s) => s,
        None => client.email_settings().await?,
    };
    if args.json {
        return print_json(&settings);
    }
    print!("{}", render_settings(&settings));
    Ok(())
}

fn render_settings(s: &EmailSettingsView) -> String {
    fields(&[
        ("smtp", s.smtp.clone()),
        ("security", s.security.as_str().to_string()),
        ("from", s.from.clone()),
        ("user", s.user.clone().unwrap_or_else(|| "-".into())),
        (
            "password",
            if s.password_set {
                "set (encrypted)"
            } else {
                "-"
            }
            .to_string(),
        ),
        ("updated", rfc3339(s.updated_at_ms)),
    ])
}

/// The `runway email list` table.
pub fn render(list: &EmailList) -> String {
    let mut out = String::new();
    if list.emails.is_empty() {
        out.push_str("no emails\n");
    } else {
        let mut t = Table::new([
            "ID", "APP", "TO", "SUBJECT", "STATE", "ATTEMPTS", "CREATED", "LAST",
        ]);
        for e in &list.emails {
            let recipients = e.to.len() + e.cc.len() + e.bcc.len();
            let to = match (e.to.first(), recipients) {
                (Some(first), 1) => first.clone(),
                (Some(first), n) => format!("{first} +{}", n - 1),
                (None, n) => format!("{n} (cc/bcc)"),
            };
            let subject: String = e.subject.chars().take(40).collect();
            t.row([
                e.id.clone(),
                e.app.clone(),
                to,
                subject,
                match &e.frontend {
                    Some(f) if e.state == EmailState::Sending => format!("sending on {f}"),
                    _ => e.state.to_string(),
                },
                format!("{}/{}", e.attempts, e.max_attempts),
                rfc3339(e.created_at_ms),
                e.server_answer
                    .clone()
                    .or_else(|| e.last_error.clone())
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&t.render());
        out.push_str("times in UTC\n");
    }
    if !list.configured {
        out.push_str(
            "no SMTP settings: emails stay queued until `runway email settings --smtp … --from …` sets them\n",
        );
    }
    out
}
