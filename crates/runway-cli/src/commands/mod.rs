//! One module per subcommand.

use crate::cli::{Cli, Command};

pub mod app;
pub mod balancer;
pub mod controller;
pub mod env;
pub mod frontend;
pub mod logs;
pub mod token;
pub mod up;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::App(cmd) => app::run(cmd).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Token(cmd) => token::run(cmd).await,
        Command::Env(args) => env::run(args).await,
        Command::Controller(cmd) => controller::run(cmd).await,
        Command::Frontend(cmd) => frontend::run(cmd).await,
        Command::Balancer(cmd) => balancer::run(cmd).await,
    }
}
