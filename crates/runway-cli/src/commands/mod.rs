//! One module per subcommand.

use crate::cli::{Cli, Command};

pub mod app;
pub mod apps;
pub mod audit;
pub mod balancer;
pub mod console;
pub mod controller;
pub mod deploy;
pub mod email;
pub mod env;
pub mod env_console;
pub mod frontend;
pub mod infra;
pub mod jobs;
pub mod login;
pub mod logs;
pub mod pipeline;
pub mod role;
pub mod service_account;
pub mod team;
pub mod timer;
pub mod token;
pub mod up;
pub mod user;
pub mod zone;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::App(cmd) => app::run(cmd).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Token(cmd) => token::run(cmd).await,
        Command::Env(args) => env::run(args).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::User(cmd) => user::run(cmd).await,
        Command::Role(cmd) => role::run(cmd).await,
        Command::Team(cmd) => team::run(cmd).await,
        Command::ServiceAccount(cmd) => service_account::run(cmd).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Pipeline(cmd) => pipeline::run(cmd).await,
        Command::Apps(args) => apps::run(args).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Console(cmd) => console::run(cmd).await,
        Command::Controller(cmd) => controller::run(cmd).await,
        Command::Frontend(cmd) => frontend::run(cmd).await,
        Command::Balancer(cmd) => balancer::run(cmd).await,
        Command::Timer(cmd) => timer::run(cmd).await,
        Command::Infra(cmd) => infra::run(cmd).await,
        Command::Jobs(args) => jobs::run(args).await,
        Command::Zone(cmd) => zone::run(cmd).await,
        Command::Email(cmd) => email::run(cmd).await,
    }
}
