//! `nixdispatch completions SHELL`: print a completion script.

use crate::cli::Cli;
use crate::Result;

/// Writes the completion script for `shell` to stdout.
pub fn run(shell: clap_complete::Shell) -> Result<i32> {
    crate::output::stdout_raw(&script(shell))?;
    Ok(0)
}

/// The completion script for `shell`, as the committed files under `completions/` hold it.
pub fn script(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "nixdispatch", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}
