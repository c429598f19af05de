//! One module per subcommand (`build`, `home`, `os`, `plan`, `probe`, `doctor`, `monitor`,
//! `stats`, `completions`), each a short composition of the pipeline's parts. The steps `build`, `home`
//! and `os` share live beside the pipeline, not here: [`crate::planning`] (the front half) and
//! [`crate::run`] (attempt, activate, push, sudo, outcome, reality).

use crate::cli::Via;
use crate::cli::{Cli, Command};
use crate::dispatch::Runner;
use crate::render::Display;
use crate::settings::{Settings, Terminal};
use crate::{Error, Result};

/// nix's error headline, for the subcommands (it lives with nix's other readers).
pub(crate) use crate::nix::error_headline;

pub mod build;
pub mod completions;
pub mod doctor;
pub mod home;
mod monitor;
pub mod os;
pub mod plan;
pub mod probe;
pub mod sessions;
pub mod stats;

/// Runs the parsed command line; returns the exit code of a run that did not fail.
pub fn run(cli: Cli) -> Result<i32> {
    let terminal = Terminal::detect();
    init_tracing(cli.global.verbose, cli.global.quiet, terminal);
    match cli.command {
        Command::Completions { shell } => completions::run(shell),
        Command::Monitor => monitor::run(&Display::from_global(&cli.global, terminal)),
        Command::Stats => stats::run(
            crate::history::state_dir(
                std::env::var_os("XDG_STATE_HOME").as_deref(),
                std::env::var_os("HOME").as_deref(),
            )
            .as_deref(),
            cli.global.json,
        ),
        command => {
            let runtime = runtime()?;
            let result = runtime.block_on(async {
                tokio::select! {
                    result = run_async(command, &cli.global, terminal) => result,
                    // Dropping the run closes its SSH masters and kills unfinished nix queries.
                    () = crate::child::interrupted_between_children() => Err(Error::Interrupted),
                }
            });
            // A blocking read that never returns (a file:// cache on a hung mount) must not
            // keep the process alive: dropping the runtime would wait for it forever.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            result
        }
    }
}

/// The commands that talk to nix and the builders.
async fn run_async(
    command: Command,
    global: &crate::cli::GlobalArgs,
    terminal: Terminal,
) -> Result<i32> {
    let settings = crate::timing::timed("settings", Settings::resolve(global, terminal)).await?;
    match command {
        Command::Plan(args) => plan::run(&settings, &args).await,
        Command::Probe => probe::run(&settings).await,
        Command::Build(args) => build::run(settings, &args).await,
        Command::Home(args) => home::run(&settings, &args).await,
        Command::Os(args) => os::run(&settings, &args).await,
        Command::Doctor => doctor::run(&settings).await,
        Command::Sessions(args) => sessions::list(&settings, &args).await,
        Command::Attach(args) => sessions::attach(&settings, &args).await,
        Command::Cancel(args) => sessions::cancel(&settings, &args).await,
        Command::Completions { .. } | Command::Monitor | Command::Stats => Ok(0),
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
fn init_tracing(verbose: u8, quiet: bool, terminal: Terminal) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0 | 1) => "warn",
        (false, 2) => "nixdispatch=debug",
        (false, _) => "nixdispatch=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = terminal.stderr && !terminal.no_color;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::output::RedactingStderr)
        .without_time()
        .try_init();
}

/// What runs `home`/`os`: nh when asked for (it must be on PATH), else nix.
fn runner(settings: &Settings) -> Result<Runner> {
    match settings.via() {
        Via::Nix => Ok(Runner::Nix),
        Via::Nh if !settings.nix().caps.runs_nh() => Err(Error::input(format!(
            "--via nh needs Nix 2.20 or later (nh runs `nix config show`), and this nix is {}: use --via nix or upgrade nix",
            settings.nix().version
        ))),
        Via::Nh if settings.nh_on_path() => Ok(Runner::Nh {
            as_root: settings.as_root(),
        }),
        Via::Nh => Err(Error::input(
            "--via nh, but nh is not on PATH: install nh (nix profile install nixpkgs#nh) or use --via nix",
        )),
    }
}
