//! A command to run: program, arguments, environment, and what its output streams carry. The
//! pure argv builders ([`crate::dispatch`]) make them; [`crate::child`] runs them.

use std::ffi::OsString;

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
    /// nix's ssh ride this run's masters, [`crate::dispatch::nix_ssh_env`]).
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
    /// front with [`crate::dispatch::sudo_validate`]).
    pub fn through_sudo(self) -> Invocation {
        let mut args = vec![OsString::from("-n")];
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
