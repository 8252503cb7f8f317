//! `runway token create|list|revoke`

use clap::{Args, Subcommand};
use runway_api::v1::{CreateToken, Scope, TokenInfo};

use crate::commands::app::print_json;
use crate::connection::Connection;
use crate::output::{Table, ago};

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create(CreateArgs),
    /// List tokens (never their secrets).
    List(ListArgs),
    /// Revoke a token by id or name.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// A name to recognise the token by, e.g. ci.
    pub name: String,
    /// What the token may do: read < deploy < console < admin; console is an
    /// infrastructure console's credential (deploy, plus prepare, commit and
    /// abort deployments); join only registers front-ends.
    #[arg(long, value_parser = ["read", "deploy", "console", "admin", "join"])]
    pub scope: String,
    /// Print JSON (including the token) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The token's id or name.
    #[arg(value_name = "ID|NAME")]
    pub id_or_name: String,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(a) => create(a).await,
        TokenCommand::List(a) => list(a).await,
        TokenCommand::Revoke(a) => revoke(a).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let scope = Scope::parse(&args.scope).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown scope {:?}; use read, deploy, console, admin or join",
            args.scope
        )
    })?;
    let created = args
        .conn
        .client()
        .await?
        .create_token(&CreateToken {
            name: args.name.clone(),
            scope,
        })
        .await?;
    if args.json {
        print_json(&created)?;
    } else {
        // The secret alone on stdout, so `TOKEN=$(runway token create …)` works.
        println!("{}", created.token);
    }
    eprintln!(
        "created token {:?} (id {}, scope {}); store it now: it is not shown again",
        created.info.name, created.info.id, created.info.scope
    );
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let tokens = args.conn.client().await?.tokens().await?;
    if args.json {
        return print_json(&tokens);
    }
    print!("{}", tokens_table(&tokens).render());
    Ok(())
}

pub fn tokens_table(tokens: &[TokenInfo]) -> Table {
    let mut t = Table::new(["ID", "NAME", "SCOPE", "CREATED", "LAST USED", "STATUS"]);
    for tok in tokens {
        let status = match tok.revoked_at_ms {
            Some(at) => format!("revoked {}", ago(Some(at))),
            None => "active".to_owned(),
        };
        t.row([
            tok.id.to_string(),
            tok.name.clone(),
            tok.scope.to_string(),
            ago(Some(tok.created_at_ms)),
            ago(tok.last_used_at_ms),
            status,
        ]);
    }
    t
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    args.conn
        .client()
        .await?
        .revoke_token(&args.id_or_name)
        .await?;
    println!("revoked token {}", args.id_or_name);
    Ok(())
}
