//! One module per subcommand, each a short composition of the pipeline's parts.

use crate::cli::{Cli, Command};
use crate::settings::Settings;
use crate::{Error, Result};

pub mod completions;
pub mod doctor;
mod monitor;
pub mod plan;
pub mod planning;
pub mod probe;

/// Runs the parsed command line; returns the exit code of a run that did not fail.
pub fn run(cli: Cli) -> Result<i32> {
    init_tracing(cli.global.verbose, cli.global.quiet);
    match cli.command {
        Command::Completions { shell } => completions::run(shell),
        Command::Monitor => monitor::run(&cli.global),
        command => runtime()?.block_on(async {
            let settings = Settings::resolve(&cli.global).await?;
            match command {
                Command::Plan(args) => plan::run(&settings, &args).await,
                Command::Probe => probe::run(&settings).await,
                Command::Build(_) => not_built("build"),
                Command::Home(_) => not_built("home"),
                Command::Os(_) => not_built("os"),
                Command::Doctor => doctor::run(&settings).await,
                Command::Completions { .. } | Command::Monitor => Ok(0),
            }
        }),
    }
}

/// A small runtime: the work is waiting on ssh, nix and HTTP, not computing.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// Diagnostics on stderr: `-vv` and more show nixdispatch's own debug lines; `RUST_LOG` wins.
fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0 | 1) => "warn",
        (false, 2) => "nixdispatch=debug",
        (false, _) => "nixdispatch=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// The honest answer of a command that does not exist yet: exit 2, never a pretend success.
fn not_built(name: &str) -> Result<i32> {
    Err(Error::input(format!(
        "`nixdispatch {name}` is not built yet in this version; use nix directly for now"
    )))
}
