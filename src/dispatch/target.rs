//! What to realise (`build`'s installables, a home-manager or NixOS configuration) and how it
//! becomes installables nix reads; names that would be misread are refused here.

use crate::nix::installables::{quote_attr, UnquotableName};

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
    pub(super) fn as_str(self) -> &'static str {
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

/// A target that cannot be put on a command line safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// A configuration name nix cannot select (a `"` cannot be quoted in an attribute path).
    #[error(transparent)]
    UnquotableName(#[from] UnquotableName),
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

pub(super) fn home_installable(flake: &str, configuration: &str) -> Result<String, DispatchError> {
    Ok(format!(
        "{}#homeConfigurations.{}.activationPackage",
        check_flake(flake)?,
        quote_attr(configuration)?
    ))
}

pub(super) fn os_installable(flake: &str, hostname: &str) -> Result<String, DispatchError> {
    Ok(format!(
        "{}#nixosConfigurations.{}.config.system.build.toplevel",
        check_flake(flake)?,
        quote_attr(hostname)?
    ))
}

pub(super) const PATH_FIX: &str = "write it as ./PATH if it is a path";
pub(super) const NH_FIX: &str = "run it with --via nix";

pub(super) fn not_option_like(text: &str, fix: &'static str) -> Result<(), DispatchError> {
    if text.starts_with('-') {
        Err(DispatchError::OptionLike {
            text: text.to_owned(),
            fix,
        })
    } else {
        Ok(())
    }
}

pub(super) fn check_flake(flake: &str) -> Result<&str, DispatchError> {
    not_option_like(flake, PATH_FIX)?;
    if flake.contains('#') {
        return Err(DispatchError::FlakeWithFragment(flake.to_owned()));
    }
    Ok(flake)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::steps;
    use crate::dispatch::test_support::*;
    use crate::plan::Mode;

    #[test]
    fn build_takes_installables_that_are_not_options() {
        let p = plan(Mode::Noop, vec![], &[]);
        let ctx = bare(&p);
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

    #[test]
    fn attribute_names_are_quoted_and_escaped() {
        assert_eq!(quote_attr("me@laptop"), Ok("\"me@laptop\"".into()));
        assert_eq!(quote_attr("a.b"), Ok("\"a.b\"".into()));
        assert_eq!(quote_attr("a b%#é"), Ok("\"a%20b%25%23%C3%A9\"".into()));
        assert_eq!(quote_attr("-x"), Ok("\"-x\"".into()));
        assert_eq!(quote_attr("a\"b"), Err(UnquotableName("a\"b".into())));
        let p = plan(Mode::Noop, vec![], &[]);
        let ctx = bare(&p);
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

    #[test]
    fn nh_refuses_option_like_names() {
        let p = plan(Mode::Noop, vec![], &[]);
        let ctx = bare(&p);
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
}
