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

use super::strings;
use crate::builder::Builder;
use crate::child::{Invocation, LogStream, Results};
use crate::nix::NixVersion;
use crate::plan::{Mode, Plan};
use std::ffi::OsString;

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
    if !plan.may_build_locally {
        flags.extend(["--max-jobs".into(), "0".into()]);
    }
    flags
}

/// `nix --extra-experimental-features "nix-command flakes" build --log-format internal-json -v
/// --json [--no-link] MODE-FLAGS INSTALLABLES USER-ARGS`.
pub(super) fn nix_build(installables: &[String], no_link: bool, ctx: &Context<'_>) -> Invocation {
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
pub(super) fn nh(mut args: Vec<OsString>, ctx: &Context<'_>) -> Invocation {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::*;
    use crate::dispatch::{steps, Runner, Target};
    use crate::nix::version::tests::{NIX_2_26, NIX_2_8};

    fn build_argv(
        plan: &Plan,
        builders: &[Builder],
        nix: &NixVersion,
        user: &[&str],
    ) -> Vec<String> {
        let nix_args: Vec<OsString> = user.iter().map(OsString::from).collect();
        let plan = &settled(plan, builders);
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
}
