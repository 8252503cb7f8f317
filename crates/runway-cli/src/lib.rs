//! `runway-cli`: the `runway` command line.
//!
//! `main.rs` only calls [`main`]. Parsing is clap derive ([`cli::Cli`]); each
//! subcommand is one file under `commands/`. Helpers shared by several commands
//! live in [`connection`] (environment URL and token), [`output`] (tables,
//! times, sizes), [`parse`] (argument helpers) and [`templates`] (`app new`).
//! [`standalone`] composes the roles into one environment for `runway up`.
//! [`infra`] is `infra.toml` (pure: parse, check, draw) for `runway infra`.

use std::process::ExitCode;

use clap::Parser;

pub mod cli;
pub mod commands;
pub mod connection;
pub mod infra;
pub mod output;
pub mod parse;
pub mod standalone;
pub mod templates;

/// Parses the command line, runs the command, prints `error: …` on one line
/// and returns exit code 1 on failure (clap itself exits 2 on usage errors).
pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Servers say what they do (the balancer logs each request); one-shot
    // commands only warn.
    let default_level = match cli.command {
        cli::Command::Up(_)
        | cli::Command::Controller(_)
        | cli::Command::Balancer(_)
        | cli::Command::Console(commands::console::ConsoleCommand::Serve(_))
        | cli::Command::Frontend(commands::frontend::FrontendCommand::Serve(_)) => "info",
        _ => "warn",
    };
    init_tracing(cli.verbose, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Poll for I/O, timers and signals every 8 task polls rather than
        // 61: a CPU-bound guest runs up to one epoch tick (10 ms) per poll,
        // so with busy guests the default left sockets and SIGTERM waiting
        // for ~600 ms.
        .event_interval(8)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// `RUST_LOG` wins; otherwise `-v` raises the level from `default_level`.
fn init_tracing(verbose: u8, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => EnvFilter::new(match verbose {
            0 => default_level,
            1 => "info",
            2 => "debug",
            _ => "trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Joins the lines of a message so an error is always a single line.
pub fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
