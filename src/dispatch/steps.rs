//! A target as the plan says: the build command, then the activation steps that run after it
//! succeeded (none with nh, which activates itself).

use super::argv::{nh, nix_build, Context};
use super::strings;
use super::target::{
    check_flake, home_installable, not_option_like, os_installable, DispatchError, HomeAction,
    OsAction, Runner, Target, NH_FIX, PATH_FIX,
};
use crate::child::{Invocation, LogStream, Results};
use std::ffi::OsString;
use std::path::Path;

/// The profile NixOS boots from, which `os switch` and `os boot` point at the new system.
pub const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::nix_ssh_env;
    use crate::dispatch::test_support::*;
    use crate::nix::version::tests::NIX_2_26;
    use crate::plan::{Mode, Plan};

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
        let p = &settled(p, &b);
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
            env: &env,
            ..bare(&p)
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
