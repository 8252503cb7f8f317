//! The command-line grammar (clap derive).

use clap::{ArgAction, Parser, Subcommand};

use crate::commands::{
    app, apps, audit, balancer, console, controller, deploy, email, env, frontend, infra, jobs,
    login, logs, pipeline, role, service_account, team, timer, token, up, user, zone,
};

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
    /// Run the typical infrastructure (console + dev + test + prod) in this
    /// process, or one environment with --single.
    Up(up::UpArgs),
    /// Create, build, publish and manage apps.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Show the environment's request log, app output and errors.
    Logs(logs::LogsArgs),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show one environment (`--env URL|NAME`), or manage the console's
    /// environments: `env add|list|show|remove`.
    Env(env::EnvArgs),
    /// Log in to an infrastructure console (stored 0600 in your config dir).
    Login(login::LoginArgs),
    /// Forget the stored console login (ends the session of a user login).
    Logout(login::LogoutArgs),
    /// The console's IT users: add, list, show, disable, enable, unlock, passwd, role.
    #[command(subcommand)]
    User(user::UserCommand),
    /// The console's roles (levels per environment): list, show, create, delete.
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// The console's teams (apps and members with a role on them).
    #[command(subcommand)]
    Team(team::TeamCommand),
    /// The console's service accounts (each bound to a role): create, list,
    /// rotate, revoke, role.
    #[command(subcommand)]
    ServiceAccount(service_account::ServiceAccountCommand),
    /// The console's audit log: who did what, when, from where, and the
    /// outcome (`--json`: JSON lines, the export).
    Audit(audit::AuditArgs),
    /// The console's pipelines: ordered environments.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// The console's applications × environments matrix, versions, tagging.
    Apps(apps::AppsArgs),
    /// Deployment plans on the console: `runway deploy APP@VERSION --from ENV
    /// --to ENV [--wait]`, `deploy plan|list|show|validate|start|continue|abort|delete`.
    /// (One environment's deploy of a published version is `runway app deploy`.)
    Deploy(deploy::DeployArgs),
    /// Run the infrastructure console, or manage its service accounts.
    #[command(subcommand)]
    Console(console::ConsoleCommand),
    /// Run the controller of a server farm.
    #[command(subcommand)]
    Controller(controller::ControllerCommand),
    /// Run a farm front-end, or list, enable, disable and remove front-ends.
    #[command(subcommand)]
    Frontend(frontend::FrontendCommand),
    /// Run the load balancer in front of a farm's front-ends.
    #[command(subcommand)]
    Balancer(balancer::BalancerCommand),
    /// The environment's timers: list, run now, per-environment schedule, time zone.
    #[command(subcommand)]
    Timer(timer::TimerCommand),
    /// The infrastructure as code (infra.toml): check it against the seeds'
    /// rules, draw it as SVG.
    #[command(subcommand)]
    Infra(infra::InfraCommand),
    /// The environment's background jobs: list (`runway jobs [APP] [--state S]`),
    /// show, retry, cancel.
    Jobs(jobs::JobsArgs),
    /// The environment's deployment zones: create, list, show, set, remove.
    #[command(subcommand)]
    Zone(zone::ZoneCommand),
    /// The environment's email: SMTP settings (`runway email settings`, with
    /// `--test ADDRESS`), the outbox (`list [--state S]`, `show ID`, `resend ID`).
    #[command(subcommand)]
    Email(email::EmailCommand),
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
