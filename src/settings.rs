//! One value the rest of the program reads: the command line, resolved once with nix's own
//! configuration (`builders`, `@/etc/nix/machines`, substituters, trusted keys), nixdispatch's
//! config file and the environment. Nothing after this reads argv or the environment again.

use crate::cli::{GlobalArgs, LogsArg, ModeArg, ProgressArg, Via};
use crate::machines::{parse_machines_checked, read_include_file, Machine};
use crate::nix::config::NixConfig;
use crate::nix::Nix;
use crate::plan::Forced;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default of `--connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: f64 = 3.0;

/// Everything a run needs to know, resolved once ([`Settings::resolve`]; `build` then applies
/// nix's own flags, once, with [`Settings::with_nix_build_flags`]) and read through its
/// accessors: nothing changes it while the run reads it. How progress is shown is chosen from
/// it by [`crate::render::Display`].
#[derive(Debug)]
pub struct Settings {
    /// The builders to probe, from `--builder` or nix's `builders` setting.
    builders: Vec<Machine>,
    /// Where the builders came from, for messages.
    builders_origin: String,
    /// `--mode`.
    forced: Forced,
    /// `--connect-timeout`.
    connect_timeout: Duration,
    /// `--silent-timeout`: how long a builder may be silent mid-run before it counts as gone.
    silent_timeout: Duration,
    /// What runs `home`/`os` builds.
    via: Via,
    /// `--json`.
    json: bool,
    /// `--progress`.
    progress: ProgressArg,
    /// `--logs`.
    logs: LogsArg,
    /// `-v` count minus `-q`.
    verbosity: i8,
    /// The terminal and `NO_COLOR`, read at start.
    terminal: Terminal,
    /// We run as root (effective uid 0).
    as_root: bool,
    /// Our effective uid.
    euid: u32,
    /// `nh` is on PATH.
    nh_on_path: bool,
    /// Where `home` and `os` look when not told.
    defaults: Defaults,
    /// `NIX_SSHOPTS`, split as nix splits it.
    ssh_opts: Vec<String>,
    /// `NIX_SSHOPTS` exactly as set, for the nix processes we start (nix splits it itself).
    nix_sshopts: Option<String>,
    /// The local nix.
    nix: Nix,
    /// nix's resolved settings.
    nix_config: NixConfig,
    /// `GITHUB_ACTIONS=true` (Forgejo and Gitea alike): workflow commands and a step summary.
    github: Option<crate::render::github::GithubEnv>,
    /// Set when a nix-daemon runs our builds (a non-root user of a multi-user install).
    daemon: Option<DaemonClient>,
    /// `--remote-via`: nix's build hook or a build session on the builder.
    remote_via: crate::cli::RemoteVia,
    /// Where the history lives (`$XDG_STATE_HOME/nixdispatch`, [`crate::history::state_dir`]);
    /// `None` without `XDG_STATE_HOME` and `HOME`: no history then.
    state_dir: Option<PathBuf>,
}

/// What the process's terminal and environment say about output: read once, at start, before
/// anything is shown (diagnostics included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Terminal {
    /// stdin is a terminal.
    pub stdin: bool,
    /// stderr is a terminal.
    pub stderr: bool,
    /// `NO_COLOR` is set to a non-empty value.
    pub no_color: bool,
}

impl Terminal {
    /// Looks at stdin, stderr and `NO_COLOR`.
    pub fn detect() -> Terminal {
        use std::io::IsTerminal;
        Terminal {
            stdin: std::io::stdin().is_terminal(),
            stderr: std::io::stderr().is_terminal(),
            no_color: crate::render::no_color_requested(std::env::var_os("NO_COLOR").as_deref()),
        }
    }
}

/// Where `home` and `os` look when the command line does not say: the environment that nh and
/// home-manager read, and this machine's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// `$USER`, when set and non-empty.
    pub user: Option<String>,
    /// This machine's host name, as `hostname` prints it.
    pub hostname: String,
    /// `$NH_HOME_FLAKE`, else `$NH_FLAKE`.
    pub home_flake: Option<String>,
    /// `$NH_OS_FLAKE`, else `$NH_FLAKE`.
    pub os_flake: Option<String>,
}

impl Defaults {
    /// Reads the environment and the host name.
    fn read() -> Defaults {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Defaults {
            user: env("USER"),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned()),
            home_flake: env("NH_HOME_FLAKE").or_else(|| env("NH_FLAKE")),
            os_flake: env("NH_OS_FLAKE").or_else(|| env("NH_FLAKE")),
        }
    }

    /// The flake `home` uses: `--flake`, else `$NH_HOME_FLAKE`, else `$NH_FLAKE`, else `.`.
    pub fn home_flake(&self, given: &Option<String>) -> String {
        flake_or(given, &self.home_flake)
    }

    /// The flake `os` uses: `--flake`, else `$NH_OS_FLAKE`, else `$NH_FLAKE`, else `.`.
    pub fn os_flake(&self, given: &Option<String>) -> String {
        flake_or(given, &self.os_flake)
    }
}

fn flake_or(given: &Option<String>, default: &Option<String>) -> String {
    given
        .clone()
        .or_else(|| default.clone())
        .unwrap_or_else(|| ".".to_owned())
}

/// What the nix-daemon makes of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonClient {
    /// Whether it trusts us (`nix store ping`'s `Trusted:`, Nix 2.15+); `None` when unknown.
    pub trusted: Option<bool>,
    /// The per-run builders flag (`--builder`, or `build`'s `--builders`) the daemon ignores
    /// (we are not trusted): the builders are nix's configured ones, which the daemon uses.
    pub ignored_cli_builders: Option<&'static str>,
}

impl DaemonClient {
    /// Whether the daemon ignores per-run builders and substituters from us.
    pub fn decides(&self) -> bool {
        self.trusted == Some(false)
    }
}

/// nixdispatch's own config files: the user's (`$XDG_CONFIG_HOME/nixdispatch/config.toml`) over
/// the system-wide one ([`SYSTEM_CONFIG_FILE`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    connect_timeout: Option<f64>,
    silent_timeout: Option<f64>,
    via: Option<String>,
}

impl Settings {
    /// The builders to probe, from `--builder` or nix's `builders` setting (or `build`'s
    /// `--builders`).
    pub fn builders(&self) -> &[Machine] {
        &self.builders
    }

    /// Where the builders came from, for messages.
    pub fn builders_origin(&self) -> &str {
        &self.builders_origin
    }

    /// The mode asked for: `--mode`, as nix's own flags change it.
    pub fn forced(&self) -> Forced {
        self.forced
    }

    /// `--connect-timeout`.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// `--silent-timeout`: how long a builder may be silent mid-run before it counts as gone.
    pub fn silent_timeout(&self) -> Duration {
        self.silent_timeout
    }

    /// What runs `home`/`os` builds.
    pub fn via(&self) -> Via {
        self.via
    }

    /// `--json`.
    pub fn json(&self) -> bool {
        self.json
    }

    /// `-v` count minus `-q`.
    pub fn verbosity(&self) -> i8 {
        self.verbosity
    }

    /// The terminal and `NO_COLOR`, read at start.
    pub fn terminal(&self) -> Terminal {
        self.terminal
    }

    /// We run as root (effective uid 0).
    pub fn as_root(&self) -> bool {
        self.as_root
    }

    /// `nh` is on PATH.
    pub fn nh_on_path(&self) -> bool {
        self.nh_on_path
    }

    /// Where `home` and `os` look when not told.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// `NIX_SSHOPTS`, split as nix splits it.
    pub fn ssh_opts(&self) -> &[String] {
        &self.ssh_opts
    }

    /// `NIX_SSHOPTS` exactly as set, for the nix processes we start (nix splits it itself).
    pub fn nix_sshopts(&self) -> Option<&str> {
        self.nix_sshopts.as_deref()
    }

    /// The local nix.
    pub fn nix(&self) -> &Nix {
        &self.nix
    }

    /// nix's resolved settings.
    pub fn nix_config(&self) -> &NixConfig {
        &self.nix_config
    }

    /// `GITHUB_ACTIONS=true`: workflow commands and a step summary.
    pub fn github(&self) -> Option<&crate::render::github::GithubEnv> {
        self.github.as_ref()
    }

    /// Set when a nix-daemon runs our builds (a non-root user of a multi-user install).
    pub fn daemon(&self) -> Option<&DaemonClient> {
        self.daemon.as_ref()
    }

    /// `--remote-via`: nix's build hook or a build session on the builder.
    pub fn remote_via(&self) -> crate::cli::RemoteVia {
        self.remote_via
    }

    /// Where the history lives; `None` without `XDG_STATE_HOME` and `HOME`: no history then.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// These settings as `build`'s nix flags change them, once, before the run reads them:
    /// `--builders`/`--option builders` choose the builders (as `--builder` does), `--offline`
    /// uses no substituter and builds here what `--mode auto` would send away, `-j 0` builds
    /// nothing here ([`Forced::under_nix_flags`]).
    pub fn with_nix_build_flags(
        mut self,
        flags: &crate::nix_flags::NixBuildFlags,
    ) -> Result<Settings> {
        if let Some(spec) = &flags.builders {
            let builders = parse_cli_builders(std::slice::from_ref(spec))?.unwrap_or_default();
            match &mut self.daemon {
                // As with `--builder`: an untrusted user's `--builders` never reaches the
                // daemon's builds, so plan with the builders it uses, and say so.
                Some(daemon) if daemon.decides() => {
                    daemon.ignored_cli_builders = Some("--builders")
                }
                _ => {
                    self.builders = builders;
                    self.builders_origin = "--builders".to_owned();
                }
            }
        }
        if flags.offline {
            self.nix_config.substituters.clear();
        }
        let no_local_jobs = flags.max_jobs.as_deref().is_some_and(|j| j.trim() == "0");
        self.forced = self
            .forced
            .under_nix_flags(flags.offline, no_local_jobs)
            .map_err(Error::input)?;
        Ok(self)
    }

    /// Every bound this run puts on a wait that scales with `--connect-timeout`.
    pub fn deadlines(&self) -> crate::deadlines::Deadlines {
        crate::deadlines::Deadlines::new(self.connect_timeout)
    }

    /// This process's user as probes and messages name it: `$USER`, else `uid N` (asking
    /// `id -un` is not worth a process).
    pub fn user_label(&self) -> String {
        self.defaults
            .user
            .clone()
            .unwrap_or_else(|| format!("uid {}", self.euid))
    }

    /// Resolves the global options with nix's configuration and the environment.
    pub async fn resolve(global: &GlobalArgs, terminal: Terminal) -> Result<Settings> {
        let file = read_config_file()?;
        let timeout = global
            .connect_timeout
            .or(file.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if !timeout.is_finite() || timeout <= 0.0 || timeout > 3600.0 {
            return Err(Error::input(format!(
                "--connect-timeout {timeout} is not a number of seconds between 0 and 3600"
            )));
        }
        let silent = global
            .silent_timeout
            .or(file.silent_timeout)
            .unwrap_or(crate::watchdog::DEFAULT_SILENT_TIMEOUT);
        if !silent.is_finite() || !(1.0..=86400.0).contains(&silent) {
            return Err(Error::input(format!(
                "--silent-timeout {silent} is not a number of seconds between 1 and 86400"
            )));
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        let as_root = euid == 0;
        let nh_on_path = on_path("nh");
        let via = match (global.via, file.via.as_deref()) {
            (Some(v), _) => v,
            (None, Some("nix")) => Via::Nix,
            (None, Some("nh")) => Via::Nh,
            (None, Some(other)) => {
                return Err(Error::input(format!(
                    "via = {other:?} in the config file: use \"nix\" or \"nh\""
                )))
            }
            (None, None) if nh_on_path => Via::Nh,
            (None, None) => Via::Nix,
        };
        let nix_sshopts = std::env::var("NIX_SSHOPTS").ok();
        let ssh_opts = match &nix_sshopts {
            Some(v) => shlex::split(v).ok_or_else(|| {
                Error::input("NIX_SSHOPTS has an unbalanced quote: fix the variable")
            })?,
            None => Vec::new(),
        };
        // Builder specs are checked before anything runs (a bad one is exit 2, nothing spawned).
        let cli_builders = parse_cli_builders(&global.builders)?;

        let nix = crate::timing::timed("nix-version", Nix::detect()).await?;
        let nix_config = crate::timing::timed("nix-config", nix.config()).await?;
        let daemon = if crate::nix::is_daemon_client(as_root) {
            Some(DaemonClient {
                trusted: crate::timing::timed("trust-check", nix.local_trust()).await,
                ignored_cli_builders: None,
            })
        } else {
            None
        };
        // An untrusted user's `--builder` never reaches the daemon: plan with what it uses.
        let (cli_builders, daemon) = match (cli_builders, daemon) {
            (Some(_), Some(d)) if d.decides() => (
                None,
                Some(DaemonClient {
                    ignored_cli_builders: Some("--builder"),
                    ..d
                }),
            ),
            other => other,
        };
        let (builders, builders_origin) = match cli_builders {
            Some(b) => (b, "--builder".to_owned()),
            None => (
                parse_machines_checked(
                    &nix_config.builders,
                    "nix's builders setting",
                    &mut read_include,
                )
                .map_err(Error::input)?,
                "nix's builders setting".to_owned(),
            ),
        };
        Ok(Settings {
            builders,
            builders_origin,
            forced: match global.mode {
                ModeArg::Auto => Forced::Auto,
                ModeArg::Substitute => Forced::Substitute,
                ModeArg::Remote => Forced::Remote,
                ModeArg::Local => Forced::Local,
            },
            connect_timeout: Duration::from_secs_f64(timeout),
            silent_timeout: Duration::from_secs_f64(silent),
            // nh on PATH is the default runner only where it can run (nh needs Nix 2.20+);
            // asked for explicitly, `commands::runner` says which version it needs.
            via: if global.via.is_none() && file.via.is_none() && !nix.caps.runs_nh() {
                Via::Nix
            } else {
                via
            },
            json: global.json,
            progress: global.progress,
            logs: global.logs,
            verbosity: if global.quiet {
                -1
            } else {
                global.verbose.min(10) as i8
            },
            terminal,
            as_root,
            euid,
            nh_on_path,
            defaults: Defaults::read(),
            state_dir: crate::history::state_dir(
                std::env::var_os("XDG_STATE_HOME").as_deref(),
                std::env::var_os("HOME").as_deref(),
            ),
            ssh_opts,
            nix_sshopts,
            nix,
            nix_config,
            github: crate::render::github::GithubEnv::from_env(),
            daemon,
            remote_via: global.remote_via,
        })
    }
}

impl Settings {
    /// How progress is shown this run ([`Display::renderer`]).
    pub fn display(&self) -> crate::render::Display {
        use crate::render::Display;
        Display {
            progress: self.progress,
            logs: self.logs,
            json: self.json,
            quiet: self.verbosity < 0,
            verbose: self.verbosity.max(0) as u8,
            terminal: self.terminal,
        }
    }
}

/// Parses `--builder` flags; `None` when there are none.
pub fn parse_cli_builders(specs: &[String]) -> Result<Option<Vec<Machine>>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for spec in specs {
        all.extend(
            parse_machines_checked(spec, "--builder", &mut read_include).map_err(Error::input)?,
        );
    }
    for machine in &all {
        check_key_file(machine)?;
    }
    Ok(Some(all))
}

/// A `--builder`'s ssh key must be a readable file: ssh would only warn and try other keys,
/// and the probe would then fail with a misleading "authentication failed".
fn check_key_file(machine: &Machine) -> Result<()> {
    let Some(key) = &machine.ssh_key else {
        return Ok(());
    };
    let fail = |why: String| {
        Error::input(format!(
            "--builder {}: the ssh key {key:?} {why}: fix the path, or write - for ssh's own keys",
            machine.uri
        ))
    };
    match std::fs::File::open(key).and_then(|f| f.metadata()) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(fail("is not a file".to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(fail("does not exist".to_owned()))
        }
        Err(err) => Err(fail(format!("cannot be read ({err})"))),
    }
}

/// Reads an `@FILE` include; a missing file is skipped, as nix does; special and huge files
/// are refused ([`read_include_file`]).
fn read_include(path: &Path) -> std::result::Result<Option<String>, String> {
    read_include_file(path)
}

fn config_file_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("nixdispatch").join("config.toml"))
}

/// The system-wide config file (NixOS: `programs.nixdispatch.settings`), read after the user's:
/// `$NIXDISPATCH_SYSTEM_CONFIG` when set, else [`SYSTEM_CONFIG_FILE`].
fn system_config_path() -> PathBuf {
    std::env::var_os("NIXDISPATCH_SYSTEM_CONFIG")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(SYSTEM_CONFIG_FILE), PathBuf::from)
}

/// Where the system-wide config file is, unless `NIXDISPATCH_SYSTEM_CONFIG` says otherwise.
pub const SYSTEM_CONFIG_FILE: &str = "/etc/nixdispatch/config.toml";

/// The config files merged key by key: a flag wins, then the environment, then the user's file,
/// then the system-wide file, then the default. Each file is checked on its own first, so an
/// error names the file it is in.
fn read_config_file() -> Result<ConfigFile> {
    let mut merged = toml::Table::new();
    let user = config_file_path();
    for path in [Some(system_config_path()), user].into_iter().flatten() {
        if let Some(table) = read_config_table(&path)? {
            merged.extend(table);
        }
    }
    toml::Value::Table(merged)
        .try_into()
        .map_err(|err| Error::input(format!("config files: {}", err.message())))
}

/// One config file as a table, checked against [`ConfigFile`]; `None` when it does not exist.
fn read_config_table(path: &Path) -> Result<Option<toml::Table>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
    };
    let bad = |err: toml::de::Error| {
        Error::input(format!(
            "{}: {}",
            path.display(),
            err.message().lines().next().unwrap_or("invalid TOML")
        ))
    };
    toml::from_str::<ConfigFile>(&text).map_err(bad)?;
    toml::from_str::<toml::Table>(&text).map(Some).map_err(bad)
}

/// Whether a program is on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
                && std::fs::metadata(&candidate)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_and_os_flakes_default_as_nh_does() {
        let defaults = Defaults {
            user: Some("me".into()),
            hostname: "laptop".into(),
            home_flake: Some("/home/me/cfg".into()),
            os_flake: None,
        };
        assert_eq!(defaults.home_flake(&None), "/home/me/cfg");
        assert_eq!(defaults.home_flake(&Some("/given".into())), "/given");
        assert_eq!(defaults.os_flake(&None), ".");
        assert_eq!(defaults.os_flake(&Some("/given".into())), "/given");
    }
}
