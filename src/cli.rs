//! The command line, as the command-line contract fixes it: clap definitions only, no behaviour.
//!
//! Raw arguments stay raw here; [`crate::settings`] resolves them once, with nix's own
//! configuration and the environment, into the value the rest of the program reads.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;

/// Build with Nix where it is cheapest: from a binary cache, from a builder's store, on a
/// builder, or here.
///
/// nixdispatch reads the remote builders nix is configured with (or `--builder`), probes them
/// all at once over SSH, asks in bulk where every missing store path can come from, picks a mode
/// and says why, then runs `nix build` or `nh` with the flags that make it so, drawing nix's log
/// as live progress.
#[derive(Debug, Parser)]
#[command(
    name = "nixdispatch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// A builder in nix machines-file syntax, e.g.
    /// 'ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm'. Repeatable; when given, replaces
    /// the builders nix is configured with.
    #[arg(long = "builder", value_name = "SPEC", global = true)]
    pub builders: Vec<String>,

    /// Force a mode instead of choosing one.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto, global = true)]
    pub mode: ModeArg,

    /// The most one builder probe may take, connection and first command together, in seconds
    /// [default: 3, or `connect-timeout` in ~/.config/nixdispatch/config.toml]. After `build`,
    /// `--connect-timeout` is nix's own (binary caches): write this one in front of `build`, or
    /// as `--probe-timeout`.
    #[arg(
        long,
        value_name = "SECS",
        global = true,
        visible_alias = "probe-timeout"
    )]
    pub connect_timeout: Option<f64>,

    /// How long a builder may stay silent mid-run (no log and no answer to nixdispatch's
    /// keepalive) before it counts as gone, in seconds [default: 60, or `silent-timeout` in
    /// ~/.config/nixdispatch/config.toml]
    #[arg(long, value_name = "SECS", global = true)]
    pub silent_timeout: Option<f64>,

    /// What runs `home` and `os` builds [default: nh where it is on PATH, else nix]
    #[arg(long, value_enum, global = true)]
    pub via: Option<Via>,

    /// How a remote build runs: `hook` (nix's build hook, one ssh session per derivation,
    /// dies with this client) or `session` (the derivations copied to the builder, one
    /// `nix build` started there that outlives this client, its log streamed here, the outputs
    /// copied home). A session is used only when the whole build goes to one builder your own
    /// ssh reaches; otherwise the hook, and the run says why.
    #[arg(long, value_enum, default_value_t = RemoteVia::Session, global = true)]
    pub remote_via: RemoteVia,

    /// Machine-readable output on stdout: one JSON document, or JSON lines of events for
    /// build, home, os and monitor (the last one a summary). After `build`, `--json` is nix's
    /// own (its result JSON): write this one in front of `build`.
    #[arg(long, global = true)]
    pub json: bool,

    /// How to show progress: bars on a terminal, plain lines elsewhere.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto, global = true)]
    pub progress: ProgressArg,

    /// Which build logs to show: none, the last lines of failed builds, or every line of every
    /// build, prefixed by its name (like nix's -L).
    #[arg(long, value_enum, default_value_t = LogsArg::Failed, global = true)]
    pub logs: LogsArg,

    /// Say more (repeat for even more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Say less: errors and the result only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The modes of `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Choose from what the builders and caches hold.
    Auto,
    /// Build nothing: copy every missing path from a cache or a builder's store.
    Substitute,
    /// Build on the reachable builders.
    Remote,
    /// Build here, with no remote builders.
    Local,
}

/// The values of `--remote-via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum RemoteVia {
    /// nix's build hook on this machine.
    Hook,
    /// A build session on the builder (the default: faster from a few derivations on, and it
    /// outlives this client).
    #[default]
    Session,
}

/// The programs that can run `home` and `os` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// `nix build`, then the activation script.
    Nix,
    /// `nh home` / `nh os`.
    Nh,
}

/// The values of `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// Bars on a terminal, plain lines elsewhere.
    Auto,
    /// Live bars (needs a terminal on stderr).
    Bar,
    /// One plain line per event, for CI logs.
    Plain,
    /// The dependency tree of what is building, waiting and done, with hosts and times (needs
    /// a terminal on stderr).
    Tree,
    /// Nothing but errors and the result.
    None,
}

/// The values of `--logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogsArg {
    /// No build log lines, failed builds included (named, with the `nix log` command).
    None,
    /// The last lines of the builds that failed.
    #[default]
    Failed,
    /// Every line of every build, prefixed by the build's name.
    All,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Realise installables in the best mode (like `nix build`).
    Build(BuildArgs),
    /// Build and activate a home-manager configuration (like `nh home`).
    Home(HomeArgs),
    /// Build and activate a NixOS configuration (like `nh os`).
    Os(OsArgs),
    /// Decide and explain where every missing path will come from; builds and copies nothing.
    Plan(PlanArgs),
    /// Probe every configured builder over SSH, all at once.
    Probe,
    /// Check the distributed-build setup and say how to fix what is wrong.
    Doctor,
    /// Draw a `nix ... --log-format internal-json -v` log read on stdin (like `nom --json`).
    Monitor,
    /// List the remote build sessions on every builder: running, done, failed, lost.
    Sessions(SessionsArgs),
    /// Follow a session's log to its end, then copy its results here.
    Attach(AttachArgs),
    /// Stop a session on its builder, leaving nothing of it running there.
    Cancel(CancelArgs),
    /// What the history has learned: build times per derivation name and host, link speeds,
    /// builders' round trips (from $XDG_STATE_HOME/nixdispatch/history; delete it to forget).
    Stats,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Options of the commands that run a build.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Start the build as a session on the builder and return once it runs, printing its id;
    /// a later run of the same installables, or `attach`, picks up its results.
    #[arg(long)]
    pub detach: bool,

    /// When a builder vanishes mid-run, fail instead of finishing the build locally once.
    #[arg(long)]
    pub no_local_fallback: bool,

    /// Show the plan and ask before building (home and os: then what changes between the
    /// current and the new generation, and ask again before activating); needs a terminal.
    #[arg(long)]
    pub ask: bool,

    /// After success, copy the results to the reachable builders whose systems fit them
    /// (short for --push-to each of them), signed as --sign-key says.
    #[arg(long)]
    pub push: bool,

    /// After success, copy the results to this store: ssh-ng://HOST, file:///DIR, s3://...
    /// Repeatable.
    #[arg(long, value_name = "URI")]
    pub push_to: Vec<String>,

    /// Sign what is pushed with this secret key (nix key generate-secret) [default: the
    /// store's own secret-key-files]
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<std::path::PathBuf>,

    /// Write every installable's outputs and status (built, fetched, valid, failed,
    /// cancelled), and where it was built, to this file.
    #[arg(long, value_name = "FILE")]
    pub result_file: Option<std::path::PathBuf>,

    /// The format of --result-file.
    #[arg(long, value_enum, default_value_t = ResultFormat::Json, value_name = "FORMAT")]
    pub result_format: ResultFormat,
}

/// The formats of `--result-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ResultFormat {
    /// One JSON document.
    #[default]
    Json,
    /// JUnit XML, one test case per installable.
    Junit,
}

/// `nixdispatch build`: `nix build`'s own flags are accepted as typed, before or after the
/// installables, with or without `--` (see [`crate::nix_flags`]).
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Flake references or paths to realise, as `nix build` takes them; an attribute set of
    /// derivations builds every one in it [default: .]
    #[arg(value_name = "INSTALLABLE")]
    pub installables: Vec<String>,

    #[command(flatten)]
    pub run: RunArgs,

    /// nix build's own flags (--no-link, -o, --print-out-paths, -L, --rebuild, --option K V,
    /// --json, ...), before or after the installables; passed to nix as typed.
    #[arg(last = true, value_name = "NIX BUILD FLAGS")]
    pub nix_args: Vec<OsString>,
}

/// The actions of `home`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum HomeAction {
    /// Build, then activate.
    #[default]
    Switch,
    /// Build only.
    Build,
}

/// `nixdispatch home`.
#[derive(Debug, Args)]
pub struct HomeArgs {
    /// What to do [default: switch]
    #[arg(value_enum)]
    pub action: Option<HomeAction>,

    /// The flake holding `homeConfigurations` [default: $NH_FLAKE, $NH_HOME_FLAKE, then .]
    #[arg(long, value_name = "REF")]
    pub flake: Option<String>,

    /// The configuration to build [default: $USER@$(hostname), then $USER]
    #[arg(short = 'c', long, value_name = "NAME")]
    pub configuration: Option<String>,

    #[command(flatten)]
    pub run: RunArgs,

    /// Arguments passed to nix untouched (after `--`).
    #[arg(last = true, value_name = "NIX ARGS")]
    pub nix_args: Vec<OsString>,
}

/// The actions of `os`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OsAction {
    /// Build, make it the boot default and activate it now.
    #[default]
    Switch,
    /// Build and make it the boot default.
    Boot,
    /// Build and activate it now, without making it the boot default.
    Test,
    /// Build only.
    Build,
}

/// `nixdispatch os`.
#[derive(Debug, Args)]
pub struct OsArgs {
    /// What to do [default: switch]
    #[arg(value_enum)]
    pub action: Option<OsAction>,

    /// The flake holding `nixosConfigurations` [default: $NH_FLAKE, $NH_OS_FLAKE, then .]
    #[arg(long, value_name = "REF")]
    pub flake: Option<String>,

    /// The configuration to build [default: this machine's host name]
    #[arg(short = 'H', long, value_name = "NAME")]
    pub hostname: Option<String>,

    #[command(flatten)]
    pub run: RunArgs,

    /// Arguments passed to nix untouched (after `--`).
    #[arg(last = true, value_name = "NIX ARGS")]
    pub nix_args: Vec<OsString>,
}

/// `nixdispatch sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// Every session on the builders, also those other machines started and those already
    /// used up (copied home, failure shown, lost) [default: this machine's, not yet used up]
    #[arg(long)]
    pub all: bool,
}

/// `nixdispatch attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The session to follow [default: the only one of this machine that is not used up]
    #[arg(value_name = "ID")]
    pub id: Option<String>,
}

/// `nixdispatch cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The session to stop (`nixdispatch sessions` lists them).
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `nixdispatch plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Flake references or paths to plan for, as `nix build` takes them.
    #[arg(required = true, value_name = "INSTALLABLE")]
    pub installables: Vec<String>,
}

impl Cli {
    /// The clap command, for completions and tests.
    pub fn command() -> clap::Command {
        <Self as clap::CommandFactory>::command()
    }

    /// Parses the command line. The words after `build` are sorted first
    /// ([`crate::nix_flags::sort_build_words`]): nixdispatch's options and the installables
    /// stay in front, nix's flags and their values go behind a `--`.
    pub fn try_parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
        let args: Vec<OsString> = args.into_iter().collect();
        <Self as Parser>::try_parse_from(crate::nix_flags::sort_argv(&Self::command(), args))
    }
}
