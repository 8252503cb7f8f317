//! The command-line grammar (clap derive).

use clap::{ArgAction, Parser, Subcommand};

use crate::commands::{app, balancer, controller, env, frontend, logs, token, up};

/// Runway: a self-hosted platform for WebAssembly HTTP apps.
#[derive(Parser, Debug)]
#[command(name = "runway", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a standalone environment (controller and one front-end) in this process.
    Up(up::UpArgs),
    /// Create, build, publish and manage apps.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Show the environment's request log, app output and errors.
    Logs(logs::LogsArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show the environment: engine, generation, limits, front-ends.
    Env(env::EnvArgs),
    /// Run the controller of a server farm.
    #[command(subcommand)]
    Controller(controller::ControllerCommand),
    /// Run a farm front-end, or list, enable, disable and remove front-ends.
    #[command(subcommand)]
    Frontend(frontend::FrontendCommand),
    /// Run the load balancer in front of a farm's front-ends.
    #[command(subcommand)]
    Balancer(balancer::BalancerCommand),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand (duplicate
    /// argument names, conflicting flags…), which otherwise panic at run time.
    #[test]
    fn the_grammar_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
