//! nixdispatch: a front end to `nix build` and `nh` that decides, every run, where each missing
//! store path comes from (a binary cache, a builder's store, a build on a builder, or a local
//! build), says why, and runs nix with the flags that make it so.
//!
//! One run is one pipeline:
//! [`cli`] → [`settings`] → [`probe`] → [`sources`] → [`plan`] → [`dispatch`] → [`child`] →
//! [`log`] → [`monitor`] → [`render`]. The [`commands`] compose it.

// Input from users and remote hosts never reaches an unwrap, an expect or a panic: outside tests
// the library has none, and these keep it so (tests may unwrap, see clippy.toml).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod builder;
pub mod child;
pub mod cli;
pub mod commands;
pub mod deadlines;
pub mod dispatch;
pub mod early_holdings;
pub mod error;
pub mod history;
pub mod log;
pub mod machines;
pub mod monitor;
pub mod nix;
pub mod nix_flags;

pub mod output;
pub mod plan;
pub mod planning;
pub mod probe;
pub mod redact;
pub mod render;
pub mod run;
pub mod session;
pub mod settings;
pub mod sources;
pub mod store_path;
pub mod store_uri;
pub mod timing;
pub mod watchdog;

pub use error::{Error, Result};

use std::ffi::OsString;

/// Runs nixdispatch with these arguments and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    timing::start();
    let cli = match cli::Cli::try_parse_args(args) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = err.print();
            return err.exit_code();
        }
    };
    let outcome = commands::run(cli);
    // Every ssh master is closed by now (they close on drop); their shared directory goes too.
    probe::remove_shared_socket_dir();
    match outcome {
        Ok(code) => code,
        Err(Error::StdoutClosed) => Error::StdoutClosed.code(),
        Err(err) => {
            output::stderr_line(&format!("nixdispatch: error: {err}"));
            err.code()
        }
    }
}
