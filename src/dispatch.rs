//! Plan → argv: the `nix build` or `nh home|os` command line that makes nix do what the plan
//! says, and the activation steps after it. Pure: nothing here spawns or reads anything.
//!
//! The mode becomes nix options, in forms that Nix 2.8 through 2.31 and Lix all read:
//!
//! | mode | options |
//! |---|---|
//! | `noop`, `local` | `--option builders ""` (no builder is ever contacted) |
//! | `substitute` | the live builders (so the build hook can copy unsigned outputs back, and anything the plan missed can still build), `builders-use-substitutes`, the builders' stores as `extra-substituters` where the plan substitutes from them |
//! | `remote` | the same, plus `--max-jobs 0` when every derivation to build has a builder (preferLocalBuild ones still build here) |
//!
//! A builder the probe could not verify as nix will reach it (a nix-daemon connects as root)
//! never gets `--max-jobs 0`: nix may still have to build here. When the daemon does not trust
//! us, it ignores per-run builders and substituters, so none are passed (`builders = ""` is the
//! one value it honours).
//!
//! Dead builders never appear: nix would wait on them. Nor do dead caches: when one refused the
//! connection or said nothing in time, `--option substituters` lists the others. The user's own nix arguments come last,
//! so they win.

use crate::builder::Builder;
use crate::nix::NixVersion;
use crate::plan::{Mode, Plan};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The profile NixOS boots from, which `os switch` and `os boot` point at the new system.
pub const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";

/// What runs `home` and `os` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// `nix build`, then the activation steps.
    Nix,
    /// `nh home` / `nh os` (4.x), which activate themselves.
    Nh {
        /// Whether nixdispatch runs as root: `nh os` refuses to unless given `--bypass-root-check`.
        as_root: bool,
    },
}

/// `home`'s actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeAction {
    /// Build and activate.
    Switch,
    /// Build only.
    Build,
}

/// `os`'s actions (and `switch-to-configuration`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsAction {
    /// Build, make it the boot default, activate.
    Switch,
    /// Build, make it the boot default.
    Boot,
    /// Build, activate without making it the boot default.
    Test,
    /// Build only.
    Build,
}

impl OsAction {
    fn as_str(self) -> &'static str {
        match self {
            OsAction::Switch => "switch",
            OsAction::Boot => "boot",
            OsAction::Test => "test",
            OsAction::Build => "build",
        }
    }
}

/// What to realise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `nixdispatch build INSTALLABLE...` (always through `nix build`).
    Build {
        /// The installables, as the user gave them.
        installables: Vec<String>,
    },
    /// A home-manager configuration: `FLAKE#homeConfigurations."NAME".activationPackage`.
    Home {
        /// The flake reference, without `#`.
        flake: String,
        /// The configuration name, e.g. `me@laptop`.
        configuration: String,
        /// Switch or build.
        action: HomeAction,
    },
    /// A NixOS configuration: `FLAKE#nixosConfigurations."HOST".config.system.build.toplevel`.
    Os {
        /// The flake reference, without `#`.
        flake: String,
        /// The configuration's host name.
        hostname: String,
        /// Switch, boot, test or build.
        action: OsAction,
    },
}

/// Where a command writes nix's `--log-format internal-json` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// On its stderr (`nix build`).
    Stderr,
    /// On its stdout: `nh --no-nom` runs nix with stderr merged into nh's stdout; nh's own
    /// messages go to its stderr.
    Stdout,
    /// It writes no nix log (activation scripts).
    None,
}

/// What a command prints on stdout, for the caller to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Results {
    /// `nix build --json`'s result list, `[{"drvPath": …, "outputs": {"out": PATH}}]`: the
    /// result path for activation is the first entry's `out`.
    BuildJson,
    /// Nothing to read.
    Nothing,
}

/// One command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program (looked up on PATH unless it is a path).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables set for it on top of our own environment (e.g. the `NIX_SSHOPTS` that lets
    /// nix's ssh ride this run's masters, [`nix_ssh_env`]).
    pub env: Vec<(OsString, OsString)>,
    /// Where its nix log appears.
    pub log: LogStream,
    /// What its stdout carries.
    pub results: Results,
}

impl Invocation {
    /// A command that writes no nix log and whose stdout nobody reads.
    pub fn plain(program: &str, args: Vec<OsString>) -> Invocation {
        Invocation {
            program: program.into(),
            args,
            env: Vec::new(),
            log: LogStream::None,
            results: Results::Nothing,
        }
    }

    /// The same command run through `sudo -n` (never a prompt: credentials are asked for up
    /// front with [`sudo_validate`]).
    pub fn through_sudo(self) -> Invocation {
        let mut args = strings(&["-n"]);
        args.push(self.program);
        args.extend(self.args);
        Invocation {
            program: "sudo".into(),
            args,
            ..self
        }
    }

    /// The whole command line, program first.
    pub fn argv(&self) -> Vec<OsString> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

/// An activation step, run after a successful build with the build's result path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `RESULT/activate` (home-manager).
    HomeActivate,
    /// `nix-env -p /nix/var/nix/profiles/system --set RESULT`.
    SetSystemProfile,
    /// `RESULT/bin/switch-to-configuration ACTION`.
    SwitchToConfiguration(OsAction),
}

impl Activation {
    /// The program's name, for messages (`activate`, `nix-env`, `switch-to-configuration`).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::HomeActivate => "activate",
            Activation::SetSystemProfile => "nix-env",
            Activation::SwitchToConfiguration(_) => "switch-to-configuration",
        }
    }

    /// The command for this step, given the result path of the build.
    pub fn invocation(&self, result: &Path) -> Invocation {
        let (program, args): (OsString, Vec<OsString>) = match self {
            Activation::HomeActivate => (result.join("activate").into(), Vec::new()),
            Activation::SetSystemProfile => (
                "nix-env".into(),
                vec![
                    "-p".into(),
                    SYSTEM_PROFILE.into(),
                    "--set".into(),
                    result.into(),
                ],
            ),
            Activation::SwitchToConfiguration(action) => (
                result.join("bin/switch-to-configuration").into(),
                vec![action.as_str().into()],
            ),
        };
        Invocation {
            program,
            args,
            env: Vec::new(),
            log: LogStream::None,
            results: Results::Nothing,
        }
    }
}

/// A run: the build, then the activation steps (empty for `build`, for build-only actions, and
/// with nh, which activates itself). Activation runs only after the build succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps {
    /// The build.
    pub build: Invocation,
    /// The activation steps, in order.
    pub activate: Vec<Activation>,
}

impl Steps {
    /// The activation commands for a result path, in the build's environment; with `sudo`,
    /// each through `sudo -n` (a system's profile and switch-to-configuration need root).
    pub fn activation(&self, result: &Path, sudo: bool) -> Vec<Invocation> {
        self.activate
            .iter()
            .map(|a| {
                let inv = Invocation {
                    env: self.build.env.clone(),
                    ..a.invocation(result)
                };
                if sudo {
                    inv.through_sudo()
                } else {
                    inv
                }
            })
            .collect()
    }
}

/// What the command line depends on besides the target.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The plan to carry out.
    pub plan: &'a Plan,
    /// Every configured builder, as probed; only the reachable ones are passed on.
    pub builders: &'a [Builder],
    /// The local nix.
    pub nix: &'a NixVersion,
    /// The user's arguments after `--`, passed to nix last.
    pub nix_args: &'a [OsString],
    /// The environment for nix (or nh), [`nix_ssh_env`].
    pub env: &'a [(OsString, OsString)],
}

/// A target that cannot be put on a command line safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// A configuration name nix cannot select (a `"` cannot be quoted in an attribute path).
    #[error("the configuration name {0:?} contains '\"', which nix cannot select in an attribute path: rename the configuration")]
    UnquotableName(String),
    /// A flake reference that already selects an attribute.
    #[error("the flake reference {0:?} contains '#': give the flake alone and the configuration with -c/--configuration or -H/--hostname")]
    FlakeWithFragment(String),
    /// A flake reference, installable or nh argument that would be read as an option.
    #[error("{text:?} starts with '-', so it would be read as an option: {fix}")]
    OptionLike {
        /// The argument.
        text: String,
        /// How to avoid it.
        fix: &'static str,
    },
    /// `build` with nothing to build.
    #[error("nothing to build: give at least one installable")]
    NoInstallables,
}

impl From<DispatchError> for crate::Error {
    fn from(err: DispatchError) -> Self {
        crate::Error::Input(err.to_string())
    }
}

impl Target {
    /// The installables nix builds for this target, for planning (the same ones the build
    /// step names, whichever runner runs it).
    pub fn installables(&self) -> Result<Vec<String>, DispatchError> {
        match self {
            Target::Build { installables } => Ok(installables.clone()),
            Target::Home {
                flake,
                configuration,
                ..
            } => Ok(vec![home_installable(flake, configuration)?]),
            Target::Os {
                flake, hostname, ..
            } => Ok(vec![os_installable(flake, hostname)?]),
        }
    }
}

fn home_installable(flake: &str, configuration: &str) -> Result<String, DispatchError> {
    Ok(format!(
        "{}#homeConfigurations.{}.activationPackage",
        check_flake(flake)?,
        quote_attr(configuration)?
    ))
}

fn os_installable(flake: &str, hostname: &str) -> Result<String, DispatchError> {
    Ok(format!(
        "{}#nixosConfigurations.{}.config.system.build.toplevel",
        check_flake(flake)?,
        quote_attr(hostname)?
    ))
}

/// The steps that realise `target` as the plan says, through `runner` (`build` always runs
/// `nix build`).
pub fn steps(target: &Target, runner: Runner, ctx: &Context<'_>) -> Result<Steps, DispatchError> {
    match (target, runner) {
        (Target::Build { installables }, _) => {
            // None is fine: with `-f FILE` or `--expr`, nix builds the whole value (`build`
            // itself puts `.` when neither is given).
            for installable in installables {
                not_option_like(installable, PATH_FIX)?;
            }
            Ok(Steps {
                build: nix_build(installables, false, ctx),
                activate: Vec::new(),
            })
        }
        (
            Target::Home {
                flake,
                configuration,
                action,
            },
            Runner::Nix,
        ) => {
            let installable = home_installable(flake, configuration)?;
            let activate = match action {
                HomeAction::Switch => vec![Activation::HomeActivate],
                HomeAction::Build => Vec::new(),
            };
            Ok(Steps {
                build: nix_build(&[installable], true, ctx),
                activate,
            })
        }
        (
            Target::Os {
                flake,
                hostname,
                action,
            },
            Runner::Nix,
        ) => {
            let installable = os_installable(flake, hostname)?;
            let activate = match action {
                OsAction::Switch | OsAction::Boot => {
                    vec![
                        Activation::SetSystemProfile,
                        Activation::SwitchToConfiguration(*action),
                    ]
                }
                OsAction::Test => vec![Activation::SwitchToConfiguration(OsAction::Test)],
                OsAction::Build => Vec::new(),
            };
            Ok(Steps {
                build: nix_build(&[installable], true, ctx),
                activate,
            })
        }
        (
            Target::Home {
                flake,
                configuration,
                action,
            },
            Runner::Nh { .. },
        ) => {
            not_option_like(configuration, NH_FIX)?;
            let action = match action {
                HomeAction::Switch => "switch",
                HomeAction::Build => "build",
            };
            let mut args = strings(&["home", action, "-c"]);
            args.push(configuration.into());
            args.push(check_flake(flake)?.into());
            Ok(Steps {
                build: nh(args, ctx),
                activate: Vec::new(),
            })
        }
        (
            Target::Os {
                flake,
                hostname,
                action,
            },
            Runner::Nh { as_root },
        ) => {
            not_option_like(hostname, NH_FIX)?;
            let mut args = strings(&["os", action.as_str(), "-H"]);
            args.push(hostname.into());
            args.push(check_flake(flake)?.into());
            if as_root {
                args.push("--bypass-root-check".into());
            }
            Ok(Steps {
                build: nh(args, ctx),
                activate: Vec::new(),
            })
        }
    }
}

/// The nix options that put nix in the plan's mode (see the module documentation): the live
/// builders only, and never a dead one.
pub fn mode_flags(plan: &Plan, builders: &[Builder], nix: &NixVersion) -> Vec<OsString> {
    let mut flags = Vec::new();
    let mut option = |name: &str, value: String| {
        flags.extend(["--option".into(), name.into(), OsString::from(value)]);
    };
    let live: Vec<&Builder> = builders.iter().filter(|b| b.reachable()).collect();
    // Dead caches are left out as dead builders are, in every mode (a local build still
    // substitutes). A daemon that does not trust us takes this too: it keeps the entries that
    // are among its own substituters and trusted-substituters, which are all the plan has.
    if let Some(substituters) = &plan.substituters {
        option("substituters", substituters.join(" "));
    }
    // A probe that could not see what nix will see never takes the choice away from nix.
    let all_verified = live.iter().all(|b| b.unverified().is_none());
    let nothing_here = plan.builds_only_remotely() && !live.is_empty() && all_verified;
    match plan.mode {
        Mode::Noop | Mode::Local => option("builders", String::new()),
        Mode::Substitute | Mode::Remote if plan.daemon_decides => {}
        Mode::Substitute | Mode::Remote => {
            if live.is_empty() {
                option("builders", String::new());
            } else {
                let syntax = nix.speed_factor_syntax();
                let lines: Vec<String> =
                    live.iter().map(|b| b.machine.to_line_as(syntax)).collect();
                option("builders", lines.join(" ; "));
                option("builders-use-substitutes", "true".into());
            }
            let substituters: Vec<String> = live
                .iter()
                .filter(|b| plan.builder_substituters.contains(&b.id))
                .map(|b| b.machine.store_uri())
                .collect();
            if !substituters.is_empty() {
                option("extra-substituters", substituters.join(" "));
            }
        }
    }
    if nothing_here {
        flags.extend(["--max-jobs".into(), "0".into()]);
    }
    flags
}

/// `nix --extra-experimental-features "nix-command flakes" build --log-format internal-json -v
/// --json [--no-link] MODE-FLAGS INSTALLABLES USER-ARGS`.
fn nix_build(installables: &[String], no_link: bool, ctx: &Context<'_>) -> Invocation {
    let mut args = strings(&[
        "--extra-experimental-features",
        crate::nix::FEATURES,
        "build",
        "--log-format",
        "internal-json",
        "-v",
        "--json",
    ]);
    if no_link {
        args.push("--no-link".into());
    }
    args.extend(mode_flags(ctx.plan, ctx.builders, ctx.nix));
    args.extend(installables.iter().map(OsString::from));
    args.extend(ctx.nix_args.iter().cloned());
    Invocation {
        program: "nix".into(),
        args,
        env: ctx.env.to_vec(),
        log: LogStream::Stderr,
        results: Results::BuildJson,
    }
}

/// `nh ARGS --no-nom -- MODE-FLAGS --log-format internal-json -v USER-ARGS`.
///
/// nh 4.4 passes everything after `--` to `nix build` (and to its `nix eval` lookups). Without
/// `--no-nom` it pipes nix's log into nix-output-monitor; with it, nix's stderr is merged into
/// nh's stdout, raw. nh asks for confirmation only when given `--ask`.
fn nh(mut args: Vec<OsString>, ctx: &Context<'_>) -> Invocation {
    args.push("--no-nom".into());
    args.push("--".into());
    args.extend(mode_flags(ctx.plan, ctx.builders, ctx.nix));
    args.extend(strings(&["--log-format", "internal-json", "-v"]));
    args.extend(ctx.nix_args.iter().cloned());
    Invocation {
        program: "nh".into(),
        args,
        env: ctx.env.to_vec(),
        log: LogStream::Stdout,
        results: Results::Nothing,
    }
}

fn strings(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

const PATH_FIX: &str = "write it as ./PATH if it is a path";
const NH_FIX: &str = "run it with --via nix";

fn not_option_like(text: &str, fix: &'static str) -> Result<(), DispatchError> {
    if text.starts_with('-') {
        Err(DispatchError::OptionLike {
            text: text.to_owned(),
            fix,
        })
    } else {
        Ok(())
    }
}

fn check_flake(flake: &str) -> Result<&str, DispatchError> {
    not_option_like(flake, PATH_FIX)?;
    if flake.contains('#') {
        return Err(DispatchError::FlakeWithFragment(flake.to_owned()));
    }
    Ok(flake)
}

/// `"NAME"` for an attribute path inside a flake fragment. Nix percent-decodes the fragment
/// and then splits it on dots outside quotes (no escapes inside quotes), so the name is quoted
/// and characters a URL fragment cannot hold are percent-encoded; `@`, `.` and the like stay.
pub(crate) fn quote_attr(name: &str) -> Result<String, DispatchError> {
    if name.contains('"') {
        return Err(DispatchError::UnquotableName(name.to_owned()));
    }
    let mut quoted = String::from("\"");
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            quoted.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                quoted.push_str(&format!("%{b:02X}"));
            }
        }
    }
    quoted.push('"');
    Ok(quoted)
}

/// The environment for the nix (or nh) processes of a run: `NIX_SSHOPTS` with `share` (the
/// options that make nix's ssh ride the probe's masters, when they are used) in front of the
/// user's own `NIX_SSHOPTS` (ssh takes the first value of an option). Empty without `share`:
/// nix then reads the user's variable itself.
pub fn nix_ssh_env(share: Option<String>, user: Option<&str>) -> Vec<(OsString, OsString)> {
    let Some(share) = share else {
        return Vec::new();
    };
    let value = match user {
        Some(user) if !user.trim().is_empty() => format!("{share} {user}"),
        _ => share,
    };
    vec![("NIX_SSHOPTS".into(), value.into())]
}

/// `nix store sign -r --key-file KEY PATHS`: signs what is about to be pushed, closures included.
pub fn sign_paths(key: &Path, paths: &[PathBuf], env: &[(OsString, OsString)]) -> Invocation {
    let mut args = nix_command(&["store", "sign", "-r", "--key-file"]);
    args.push(key.into());
    args.extend(paths.iter().map(OsString::from));
    Invocation {
        env: env.to_vec(),
        ..Invocation::plain("nix", args)
    }
}

/// `nix copy [--no-check-sigs] --to URI PATHS`: pushes paths and their closures to a store;
/// `--no-check-sigs` when they were not signed (the store then decides whether it trusts us).
pub fn copy_paths(
    to: &str,
    paths: &[PathBuf],
    signed: bool,
    env: &[(OsString, OsString)],
) -> Invocation {
    let mut args = nix_command(&["copy"]);
    if !signed {
        args.push("--no-check-sigs".into());
    }
    args.extend(["--to".into(), to.into()]);
    args.extend(paths.iter().map(OsString::from));
    Invocation {
        env: env.to_vec(),
        ..Invocation::plain("nix", args)
    }
}

/// `--extra-experimental-features "nix-command flakes" ARGS`: nix's arguments for a new-style
/// command on every version.
fn nix_command(args: &[&str]) -> Vec<OsString> {
    let mut all = strings(&["--extra-experimental-features", crate::nix::FEATURES]);
    all.extend(strings(args));
    all
}

/// `sudo -v`: asks for the password now, on the terminal (see [`crate::run::sudo`]).
pub fn sudo_validate() -> Invocation {
    Invocation::plain("sudo", strings(&["-v"]))
}

/// `sudo -n true`: whether sudo runs without asking right now.
pub fn sudo_check() -> Invocation {
    Invocation::plain("sudo", strings(&["-n", "true"]))
}

/// `sudo -n -v`: refreshes sudo's timestamp, never a prompt.
pub fn sudo_refresh() -> Invocation {
    Invocation::plain("sudo", strings(&["-n", "-v"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BuilderId;
    use crate::machines::parse_machines;
    use crate::plan::{Counts, PlannedBuild};
    use crate::store_path::StorePath;

    use crate::nix::version::tests::{NIX_2_26, NIX_2_8};

    fn state(line: &str, reachable: bool) -> Builder {
        let mut none = |_: &Path| None;
        let machine = match parse_machines(line, "test", &mut none) {
            Ok(mut m) if m.len() == 1 => m.remove(0),
            other => panic!("{line}: {other:?}"),
        };
        let mut b = Builder::declared(
            BuilderId(0),
            machine,
            crate::probe::Identity::Own("test".into()),
        );
        if reachable {
            b.set_status(crate::builder::Status::Verified { connection: None });
        } else {
            b.leave_out(crate::probe::ProbeFailure::Refused);
        }
        b.systems = Vec::new();
        b
    }

    /// seasmoke (live), deadhost (unreachable), fast (live, fractional speed, host key).
    fn builders() -> Vec<Builder> {
        let mut all = vec![
            state("ssh-ng://seasmoke x86_64-linux - 4 1", true),
            state("ssh-ng://deadhost x86_64-linux - 64 10", false),
            state(
                "ssh://me@fast:2222 x86_64-linux /k 8 2.5 kvm - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU=",
                true,
            ),
        ];
        for (i, b) in all.iter_mut().enumerate() {
            b.id = BuilderId(i);
        }
        all
    }

    /// The id of the builder with that URI among [`builders`].
    fn id_of(uri: &str) -> BuilderId {
        builders()
            .iter()
            .find(|b| b.machine.uri == uri)
            .map_or(BuilderId(usize::MAX), |b| b.id)
    }

    const SEASMOKE_LINE: &str = "ssh-ng://seasmoke x86_64-linux - 4 1 - - -";
    const FAST_LINE: &str =
        "ssh://me@fast:2222 x86_64-linux /k 8 2.5 kvm - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU=";

    fn sp(n: u8) -> StorePath {
        let c = char::from(b'a' + n);
        StorePath::parse(&format!("/nix/store/{}-p{n}", c.to_string().repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn plan(mode: Mode, builds: Vec<Option<&str>>, substituters: &[&str]) -> Plan {
        Plan {
            mode,
            reason: String::new(),
            counts: Counts::default(),
            paths: Vec::new(),
            builds: builds
                .into_iter()
                .enumerate()
                .map(|(i, from)| PlannedBuild {
                    drv: sp(i as u8),
                    from: from.map(String::from),
                })
                .collect(),
            builder_substituters: substituters.iter().map(|s| id_of(s)).collect(),
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
        }
    }

    fn argv(steps: &Steps) -> Vec<String> {
        steps
            .build
            .argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn build_argv(
        plan: &Plan,
        builders: &[Builder],
        nix: &NixVersion,
        user: &[&str],
    ) -> Vec<String> {
        let nix_args: Vec<OsString> = user.iter().map(OsString::from).collect();
        let ctx = Context {
            plan,
            builders,
            nix,
            nix_args: &nix_args,
            env: &[],
        };
        let target = Target::Build {
            installables: vec![".#hello".into()],
        };
        let steps = steps(&target, Runner::Nix, &ctx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(steps.build.log, LogStream::Stderr);
        assert_eq!(steps.build.results, Results::BuildJson);
        assert!(steps.activate.is_empty());
        argv(&steps)
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const NIX_BUILD: &[&str] = &[
        "nix",
        "--extra-experimental-features",
        "nix-command flakes",
        "build",
        "--log-format",
        "internal-json",
        "-v",
        "--json",
    ];

    fn with(prefix: &[&str], rest: &[&str]) -> Vec<String> {
        v(prefix).into_iter().chain(v(rest)).collect()
    }

    fn no_dead_builder(argv: &[String]) {
        assert!(!argv.iter().any(|a| a.contains("deadhost")), "{argv:?}");
    }

    // --- nix build, per mode ----------------------------------------------------------------

    #[test]
    fn dead_caches_are_left_out_in_every_mode() {
        for mode in [Mode::Local, Mode::Substitute, Mode::Remote] {
            let mut p = plan(mode, vec![Some("ssh-ng://seasmoke")], &[]);
            p.substituters = Some(vec!["http://a".into(), "file:///c".into()]);
            let argv = build_argv(&p, &builders(), &NIX_2_26, &[]);
            let at = argv.iter().position(|a| a == "substituters");
            assert_eq!(
                at.and_then(|i| argv.get(i + 1)).map(String::as_str),
                Some("http://a file:///c"),
                "{mode}: {argv:?}"
            );
            p.daemon_decides = true;
            let argv = build_argv(&p, &builders(), &NIX_2_26, &[]);
            assert!(argv.contains(&"http://a file:///c".to_owned()), "{argv:?}");
        }
        let argv = build_argv(&plan(Mode::Local, vec![], &[]), &builders(), &NIX_2_26, &[]);
        assert!(!argv.iter().any(|a| a == "substituters"), "{argv:?}");
    }

    #[test]
    fn noop_and_local_turn_builders_off() {
        for mode in [Mode::Noop, Mode::Local] {
            let argv = build_argv(&plan(mode, vec![], &[]), &builders(), &NIX_2_26, &[]);
            assert_eq!(
                argv,
                with(NIX_BUILD, &["--option", "builders", "", ".#hello"]),
                "{mode}"
            );
        }
    }

    #[test]
    fn substitute_passes_live_builders_and_builder_substituters() {
        let p = plan(
            Mode::Substitute,
            vec![],
            &["ssh://me@fast:2222", "ssh-ng://deadhost"],
        );
        let argv = build_argv(&p, &builders(), &NIX_2_26, &[]);
        let builders_value = format!("{SEASMOKE_LINE} ; {FAST_LINE}");
        assert_eq!(
            argv,
            with(
                NIX_BUILD,
                &[
                    "--option",
                    "builders",
                    &builders_value,
                    "--option",
                    "builders-use-substitutes",
                    "true",
                    "--option",
                    "extra-substituters",
                    "ssh://me@fast:2222?ssh-key=/k&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU%3D",
                    ".#hello",
                ]
            )
        );
        no_dead_builder(&argv);
    }

    #[test]
    fn substitute_without_builder_substituters_or_live_builders() {
        let p = plan(Mode::Substitute, vec![], &[]);
        let argv = build_argv(&p, &builders()[..1], &NIX_2_26, &[]);
        assert_eq!(
            argv,
            with(
                NIX_BUILD,
                &[
                    "--option",
                    "builders",
                    SEASMOKE_LINE,
                    "--option",
                    "builders-use-substitutes",
                    "true",
                    ".#hello"
                ]
            )
        );
        let dead = vec![state("ssh-ng://deadhost", false)];
        let argv = build_argv(&p, &dead, &NIX_2_26, &[]);
        assert_eq!(
            argv,
            with(NIX_BUILD, &["--option", "builders", "", ".#hello"])
        );
    }

    #[test]
    fn an_unverified_builder_never_gets_max_jobs_0() {
        let mut seasmoke = state("ssh-ng://seasmoke x86_64-linux - 4 1", true);
        seasmoke.set_status(crate::builder::Status::Unverified {
            alive: None,
            note: Some("alive; not verified".into()),
            connection: None,
        });
        let p = plan(Mode::Remote, vec![Some("ssh-ng://seasmoke")], &[]);
        let argv = build_argv(&p, &[seasmoke], &NIX_2_26, &[]);
        assert!(!argv.contains(&"--max-jobs".to_string()), "{argv:?}");
        assert!(argv.contains(&"builders".to_string()), "{argv:?}");
    }

    #[test]
    fn when_the_daemon_decides_no_builders_or_substituters_are_passed() {
        let mut p = plan(
            Mode::Remote,
            vec![Some("ssh-ng://seasmoke")],
            &["ssh-ng://seasmoke"],
        );
        p.daemon_decides = true;
        let argv = build_argv(&p, &builders(), &NIX_2_26, &[]);
        assert!(!argv.contains(&"builders".to_string()), "{argv:?}");
        assert!(
            !argv.contains(&"extra-substituters".to_string()),
            "{argv:?}"
        );
        // Local still turns builders off: the one value the daemon honours from anyone.
        p.mode = Mode::Local;
        let argv = build_argv(&p, &builders(), &NIX_2_26, &[]);
        assert!(argv.contains(&"builders".to_string()), "{argv:?}");
    }

    #[test]
    fn remote_builds_nothing_locally_only_when_every_build_has_a_builder() {
        let all_remote = plan(
            Mode::Remote,
            vec![Some("ssh-ng://seasmoke"), Some("ssh://me@fast:2222")],
            &[],
        );
        let argv = build_argv(
            &all_remote,
            &builders(),
            &NIX_2_26,
            &["--keep-going", "--max-jobs", "4"],
        );
        let builders_value = format!("{SEASMOKE_LINE} ; {FAST_LINE}");
        assert_eq!(
            argv,
            with(
                NIX_BUILD,
                &[
                    "--option",
                    "builders",
                    &builders_value,
                    "--option",
                    "builders-use-substitutes",
                    "true",
                    "--max-jobs",
                    "0",
                    ".#hello",
                    "--keep-going",
                    "--max-jobs",
                    "4",
                ]
            )
        );
        no_dead_builder(&argv);

        let some_local = plan(
            Mode::Remote,
            vec![Some("ssh-ng://seasmoke"), None],
            &["ssh-ng://seasmoke"],
        );
        let argv = build_argv(&some_local, &builders(), &NIX_2_26, &[]);
        assert!(!argv.contains(&"--max-jobs".to_string()), "{argv:?}");
        assert!(argv.contains(&"extra-substituters".to_string()));
        assert!(argv.contains(&"ssh-ng://seasmoke".to_string()));
        no_dead_builder(&argv);
    }

    #[test]
    fn old_nix_gets_whole_speed_factors() {
        let p = plan(Mode::Remote, vec![Some("ssh://me@fast:2222")], &[]);
        let argv = build_argv(&p, &builders(), &NIX_2_8, &[]);
        let fast_int = FAST_LINE.replace(" 2.5 ", " 3 ");
        assert!(
            argv.contains(&format!("{SEASMOKE_LINE} ; {fast_int}")),
            "{argv:?}"
        );
    }

    #[test]
    fn build_takes_installables_that_are_not_options() {
        let p = plan(Mode::Noop, vec![], &[]);
        let ctx = Context {
            plan: &p,
            builders: &[],
            nix: &NIX_2_26,
            nix_args: &[],
            env: &[],
        };
        let empty = Target::Build {
            installables: vec![],
        };
        // `nix build --expr E` / `-f FILE` with no installable builds the whole value.
        assert!(steps(&empty, Runner::Nix, &ctx).is_ok());
        let dash = Target::Build {
            installables: vec!["--impure".into()],
        };
        assert!(matches!(
            steps(&dash, Runner::Nix, &ctx),
            Err(DispatchError::OptionLike { .. })
        ));
    }

    // --- home and os through nix ------------------------------------------------------------

    fn home(action: HomeAction) -> Target {
        Target::Home {
            flake: "/etc/fixture".into(),
            configuration: "me@laptop".into(),
            action,
        }
    }

    fn os(action: OsAction) -> Target {
        Target::Os {
            flake: ".".into(),
            hostname: "seasmoke".into(),
            action,
        }
    }

    fn run_steps(target: &Target, runner: Runner, p: &Plan, user: &[&str]) -> Steps {
        let nix_args: Vec<OsString> = user.iter().map(OsString::from).collect();
        let b = builders();
        let ctx = Context {
            plan: p,
            builders: &b,
            nix: &NIX_2_26,
            nix_args: &nix_args,
            env: &[],
        };
        steps(target, runner, &ctx).unwrap_or_else(|e| panic!("{e}"))
    }

    fn activation_argv(steps: &Steps) -> Vec<Vec<String>> {
        steps
            .activation(Path::new("/nix/store/r-result"), false)
            .iter()
            .map(|i| {
                assert_eq!(i.log, LogStream::None);
                i.argv()
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn home_through_nix() {
        let p = plan(Mode::Local, vec![None], &[]);
        let s = run_steps(&home(HomeAction::Switch), Runner::Nix, &p, &["--impure"]);
        assert_eq!(
            argv(&s),
            with(
                NIX_BUILD,
                &[
                    "--no-link",
                    "--option",
                    "builders",
                    "",
                    "/etc/fixture#homeConfigurations.\"me@laptop\".activationPackage",
                    "--impure",
                ]
            )
        );
        assert_eq!(s.activate, vec![Activation::HomeActivate]);
        assert_eq!(
            activation_argv(&s),
            vec![v(&["/nix/store/r-result/activate"])]
        );

        let s = run_steps(&home(HomeAction::Build), Runner::Nix, &p, &[]);
        assert!(s.activate.is_empty());
    }

    fn words(inv: &Invocation) -> Vec<String> {
        inv.argv()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn nix_rides_the_masters_before_the_user_s_own_ssh_options() {
        let share = || Some("-o ControlPath=/d/%C -o ControlMaster=no".to_owned());
        let value = |env: Vec<(OsString, OsString)>| match env.as_slice() {
            [(k, v)] if k == "NIX_SSHOPTS" => v.to_string_lossy().into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            value(nix_ssh_env(share(), Some("-F /cfg"))),
            "-o ControlPath=/d/%C -o ControlMaster=no -F /cfg"
        );
        assert_eq!(
            value(nix_ssh_env(share(), Some("  "))),
            "-o ControlPath=/d/%C -o ControlMaster=no"
        );
        assert!(nix_ssh_env(None, Some("-F /cfg")).is_empty());
        // The environment reaches the build and every activation step.
        let env = nix_ssh_env(share(), None);
        let p = plan(Mode::Local, vec![], &[]);
        let ctx = Context {
            plan: &p,
            builders: &[],
            nix: &NIX_2_26,
            nix_args: &[],
            env: &env,
        };
        let s = steps(&os(OsAction::Switch), Runner::Nix, &ctx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.build.env, env);
        let result = Path::new("/nix/store/r-result");
        assert!(s.activation(result, true).iter().all(|i| i.env == env));
    }

    #[test]
    fn activation_through_sudo_never_prompts() {
        let p = plan(Mode::Local, vec![], &[]);
        let s = run_steps(&os(OsAction::Test), Runner::Nix, &p, &[]);
        let steps = s.activation(Path::new("/nix/store/r-result"), true);
        assert_eq!(
            steps.iter().map(words).collect::<Vec<_>>(),
            [v(&[
                "sudo",
                "-n",
                "/nix/store/r-result/bin/switch-to-configuration",
                "test"
            ])]
        );
        assert_eq!(s.activate[0].name(), "switch-to-configuration");
    }

    #[test]
    fn push_signs_then_copies() {
        let paths = [
            PathBuf::from("/nix/store/r-a"),
            PathBuf::from("/nix/store/r-b"),
        ];
        let features = ["nix", "--extra-experimental-features", "nix-command flakes"];
        let sign = sign_paths(Path::new("/k.sec"), &paths, &[]);
        assert_eq!(
            words(&sign),
            with(
                &features,
                &[
                    "store",
                    "sign",
                    "-r",
                    "--key-file",
                    "/k.sec",
                    "/nix/store/r-a",
                    "/nix/store/r-b"
                ]
            )
        );
        let env = vec![(OsString::from("NIX_SSHOPTS"), OsString::from("-F /cfg"))];
        let signed = copy_paths("ssh-ng://seasmoke", &paths, true, &env);
        assert_eq!(
            words(&signed),
            with(
                &features,
                &[
                    "copy",
                    "--to",
                    "ssh-ng://seasmoke",
                    "/nix/store/r-a",
                    "/nix/store/r-b"
                ]
            )
        );
        assert_eq!(signed.env, env);
        let unsigned = copy_paths("file:///c", &paths[..1], false, &[]);
        assert_eq!(
            words(&unsigned),
            with(
                &features,
                &[
                    "copy",
                    "--no-check-sigs",
                    "--to",
                    "file:///c",
                    "/nix/store/r-a"
                ]
            )
        );
    }

    #[test]
    fn sudo_command_lines() {
        assert_eq!(words(&sudo_validate()), v(&["sudo", "-v"]));
        assert_eq!(words(&sudo_check()), v(&["sudo", "-n", "true"]));
        assert_eq!(words(&sudo_refresh()), v(&["sudo", "-n", "-v"]));
    }

    #[test]
    fn os_through_nix() {
        let p = plan(Mode::Substitute, vec![], &[]);
        let s = run_steps(&os(OsAction::Switch), Runner::Nix, &p, &[]);
        let builders_value = format!("{SEASMOKE_LINE} ; {FAST_LINE}");
        assert_eq!(
            argv(&s),
            with(
                NIX_BUILD,
                &[
                    "--no-link",
                    "--option",
                    "builders",
                    &builders_value,
                    "--option",
                    "builders-use-substitutes",
                    "true",
                    ".#nixosConfigurations.\"seasmoke\".config.system.build.toplevel",
                ]
            )
        );
        let set_profile = v(&[
            "nix-env",
            "-p",
            "/nix/var/nix/profiles/system",
            "--set",
            "/nix/store/r-result",
        ]);
        let stc = |a: &str| v(&["/nix/store/r-result/bin/switch-to-configuration", a]);
        assert_eq!(
            activation_argv(&s),
            vec![set_profile.clone(), stc("switch")]
        );
        let s = run_steps(&os(OsAction::Boot), Runner::Nix, &p, &[]);
        assert_eq!(activation_argv(&s), vec![set_profile, stc("boot")]);
        let s = run_steps(&os(OsAction::Test), Runner::Nix, &p, &[]);
        assert_eq!(activation_argv(&s), vec![stc("test")]);
        let s = run_steps(&os(OsAction::Build), Runner::Nix, &p, &[]);
        assert!(s.activate.is_empty());
    }

    #[test]
    fn attribute_names_are_quoted_and_escaped() {
        assert_eq!(quote_attr("me@laptop"), Ok("\"me@laptop\"".into()));
        assert_eq!(quote_attr("a.b"), Ok("\"a.b\"".into()));
        assert_eq!(quote_attr("a b%#é"), Ok("\"a%20b%25%23%C3%A9\"".into()));
        assert_eq!(quote_attr("-x"), Ok("\"-x\"".into()));
        assert_eq!(
            quote_attr("a\"b"),
            Err(DispatchError::UnquotableName("a\"b".into()))
        );
        let p = plan(Mode::Noop, vec![], &[]);
        let ctx = Context {
            plan: &p,
            builders: &[],
            nix: &NIX_2_26,
            nix_args: &[],
            env: &[],
        };
        let frag = Target::Home {
            flake: ".#me".into(),
            configuration: "me".into(),
            action: HomeAction::Build,
        };
        assert_eq!(
            steps(&frag, Runner::Nix, &ctx),
            Err(DispatchError::FlakeWithFragment(".#me".into()))
        );
        let dash = Target::Os {
            flake: "-f".into(),
            hostname: "h".into(),
            action: OsAction::Build,
        };
        assert!(steps(&dash, Runner::Nix, &ctx).is_err());
    }

    // --- through nh -------------------------------------------------------------------------

    const NH_NIX_LOG: &[&str] = &["--log-format", "internal-json", "-v"];

    #[test]
    fn home_through_nh() {
        let p = plan(Mode::Remote, vec![Some("ssh-ng://seasmoke")], &[]);
        let builders_value = format!("{SEASMOKE_LINE} ; {FAST_LINE}");
        for (action, word) in [(HomeAction::Switch, "switch"), (HomeAction::Build, "build")] {
            let s = run_steps(
                &home(action),
                Runner::Nh { as_root: true },
                &p,
                &["--impure"],
            );
            let mut want = v(&[
                "nh",
                "home",
                word,
                "-c",
                "me@laptop",
                "/etc/fixture",
                "--no-nom",
                "--",
            ]);
            want.extend(v(&[
                "--option",
                "builders",
                &builders_value,
                "--option",
                "builders-use-substitutes",
                "true",
                "--max-jobs",
                "0",
            ]));
            want.extend(v(NH_NIX_LOG));
            want.push("--impure".into());
            assert_eq!(argv(&s), want);
            assert_eq!(s.build.log, LogStream::Stdout);
            assert_eq!(s.build.results, Results::Nothing);
            assert!(s.activate.is_empty(), "nh activates itself");
            no_dead_builder(&argv(&s));
        }
    }

    #[test]
    fn os_through_nh() {
        let p = plan(Mode::Local, vec![None], &[]);
        for action in [
            OsAction::Switch,
            OsAction::Boot,
            OsAction::Test,
            OsAction::Build,
        ] {
            let s = run_steps(&os(action), Runner::Nh { as_root: false }, &p, &[]);
            let mut want = v(&[
                "nh",
                "os",
                action.as_str(),
                "-H",
                "seasmoke",
                ".",
                "--no-nom",
                "--",
            ]);
            want.extend(v(&["--option", "builders", ""]));
            want.extend(v(NH_NIX_LOG));
            assert_eq!(argv(&s), want);
            assert!(s.activate.is_empty());

            let s = run_steps(&os(action), Runner::Nh { as_root: true }, &p, &[]);
            let mut want = v(&[
                "nh",
                "os",
                action.as_str(),
                "-H",
                "seasmoke",
                ".",
                "--bypass-root-check",
                "--no-nom",
                "--",
            ]);
            want.extend(v(&["--option", "builders", ""]));
            want.extend(v(NH_NIX_LOG));
            assert_eq!(argv(&s), want);
        }
    }

    #[test]
    fn nh_refuses_option_like_names() {
        let p = plan(Mode::Noop, vec![], &[]);
        let ctx = Context {
            plan: &p,
            builders: &[],
            nix: &NIX_2_26,
            nix_args: &[],
            env: &[],
        };
        let t = Target::Home {
            flake: ".".into(),
            configuration: "-me".into(),
            action: HomeAction::Build,
        };
        let err = steps(&t, Runner::Nh { as_root: false }, &ctx)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "\"-me\" starts with '-', so it would be read as an option: run it with --via nix"
            )
        );
        // Through nix the same name is quoted inside the attribute path, which is fine.
        assert!(steps(&t, Runner::Nix, &ctx).is_ok());
    }

    #[test]
    fn dead_builders_never_appear_in_any_mode() {
        for mode in [Mode::Noop, Mode::Substitute, Mode::Remote, Mode::Local] {
            let p = plan(
                mode,
                vec![Some("ssh-ng://seasmoke")],
                &["ssh-ng://deadhost"],
            );
            for target in [
                Target::Build {
                    installables: vec!["x".into()],
                },
                home(HomeAction::Switch),
                os(OsAction::Switch),
            ] {
                for runner in [Runner::Nix, Runner::Nh { as_root: false }] {
                    no_dead_builder(&argv(&run_steps(&target, runner, &p, &[])));
                }
            }
        }
    }
}
