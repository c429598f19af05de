//! One module per subcommand, each a short composition of the pipeline's parts.

use crate::cli::{Cli, Command};
use crate::{Error, Result};

pub mod completions;
mod monitor;

/// Runs the parsed command line; returns the exit code of a run that did not fail.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Completions { shell } => completions::run(shell),
        Command::Build(_) => not_built("build"),
        Command::Home(_) => not_built("home"),
        Command::Os(_) => not_built("os"),
        Command::Plan(_) => not_built("plan"),
        Command::Probe => not_built("probe"),
        Command::Doctor => not_built("doctor"),
        Command::Monitor => monitor::run(&cli.global),
    }
}

/// The honest answer of a command that does not exist yet: exit 2, never a pretend success.
fn not_built(name: &str) -> Result<i32> {
    Err(Error::input(format!(
        "`nixdispatch {name}` is not built yet in this version; use nix directly for now"
    )))
}
