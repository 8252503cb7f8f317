//! The `runway` binary; everything lives in the library (`runway_cli`).

fn main() -> std::process::ExitCode {
    runway_cli::main()
}
