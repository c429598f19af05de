//! The one-process noop check of `build`: the user's `nix build` itself, run first with
//! `--max-jobs 0 --option substitute false --option builders ""`, its log held back.
//!
//! When every installable's outputs are valid, nix realises nothing and makes the links: that
//! run IS the build, in one nix process, with no SSH connection and no cache query (plain nix
//! answers a noop the same way, from its evaluation cache). Its log is then shown as a noop
//! build's would have been ([`Done`]). When something is missing nix can neither build it
//! (`max-jobs 0`, no builders) nor fetch it (no substitution), so it says what it would do
//! ("these N derivations will be built", "… will be fetched") and fails at once; nothing of it
//! is shown and the run plans as usual, knowing something is missing ([`Checked::Missing`]).
//!
//! Safe for a nix daemon's clients too: the daemon takes `max-jobs`, `substitute` and an empty
//! `builders` from every client, trusted or not (nix's `ClientSettings::apply`: the first two
//! are core options of every connection, `builders` is honoured when empty). Builtin
//! derivations (`builtin:fetchurl`) still run under `max-jobs 0`: a missing fixed-output fetch
//! may be fetched by the check, as the build would have.
//!
//! What a check that finds something missing costs (seen here): Nix 2.8 still starts its build
//! hook (`build-remote`, which declines: no builders), about 40 ms of a 60-90 ms check; 2.26
//! and 2.34 do not. `--option build-hook ""` would spare it, but 2.8 then fails with
//! "executing ''" before saying what is missing, so it is not passed.
//!
//! Skipped where it would change what the run means: `--rebuild`, `--dry-run`, a `--` among
//! nix's words (ours would become installables), and runs through nh (nh evaluates and builds
//! itself). `home` and `os` through nix activate the checked build's result as usual.

use crate::child::{self, Invocation, Keep, Pipe, Report};
use crate::dispatch::{self, Context, Runner, Target};
use crate::settings::Settings;
use crate::Result;
use std::ffi::OsString;

/// The most of the check's log held back (a noop's log is a few lines; what a failing check
/// prints beyond this is not needed).
const MAX_HELD: usize = 16 << 20;

/// What the check found.
#[derive(Debug)]
pub enum Checked {
    /// Everything was valid: nix built nothing and made the links. This is the run.
    Noop(Done),
    /// Something is missing (nix said what it would build or fetch): plan as usual.
    Missing,
    /// The check failed for another reason (an evaluation error, a flag nix refused), or was
    /// not run: plan as usual, which says what is wrong.
    Unknown,
}

/// The successful check: its log and stdout, to be shown as the build's.
#[derive(Debug, Default)]
pub struct Done {
    /// nix's stderr lines, in order.
    pub log: Vec<String>,
    /// Lines of the log not held (beyond [`MAX_HELD`]).
    pub dropped: usize,
    /// nix's stdout (`--json`'s result).
    pub stdout: Vec<u8>,
}

/// Whether the check may run for this request (see the module documentation).
pub fn applies(runner: Runner, build_args: &[OsString], rebuild: bool, dry_run: bool) -> bool {
    runner == Runner::Nix && !rebuild && !dry_run && !build_args.iter().any(|a| a == "--")
}

/// The flags that make the build a check: nothing built here or on a builder, nothing fetched.
/// They come after the user's words, so they win.
pub const CHECK_FLAGS: [&str; 8] = [
    "--max-jobs",
    "0",
    "--option",
    "substitute",
    "false",
    "--option",
    "builders",
    "",
];

/// The check: the noop build's invocation, with [`CHECK_FLAGS`] last.
pub fn check_invocation(
    settings: &Settings,
    target: &Target,
    build_args: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<Invocation> {
    let plan = crate::planning::noop_plan(settings, 0)?;
    let ctx = Context {
        plan: &plan,
        builders: &[],
        nix: &settings.nix().version,
        nix_args: build_args,
        env,
    };
    let mut inv = dispatch::steps(target, Runner::Nix, &ctx)?.build;
    inv.args.extend(CHECK_FLAGS.iter().map(OsString::from));
    Ok(inv)
}

/// Runs the check. Interrupted, it is `Error::Interrupted` like any build.
pub async fn check(
    settings: &Settings,
    target: &Target,
    build_args: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<Checked> {
    let inv = check_invocation(settings, target, build_args, env)?;
    tracing::debug!(argv = ?inv.argv(), "noop check");
    let mut done = Done::default();
    let mut held = 0usize;
    let finished = child::run(&inv, Keep::Stdout, |report| {
        if let Report::Line(Pipe::Stderr, line) = report {
            if held + line.len() <= MAX_HELD {
                held += line.len();
                done.log.push(line.to_owned());
            } else {
                done.dropped += 1;
            }
        }
    })
    .await?;
    if finished.status.success() && !finished.stdout_cut {
        done.stdout = finished.stdout;
        return Ok(Checked::Noop(done));
    }
    Ok(if done.log.iter().any(|l| says_missing(l)) {
        Checked::Missing
    } else {
        tracing::debug!(status = %finished.status, "the noop check failed for another reason");
        Checked::Unknown
    })
}

/// Whether a line of nix's log says that something must be built or fetched (every version
/// 2.8-2.34 prints "these N derivations will be built:" / "this path will be fetched …" before
/// it tries, then fails with "unable to start any build" or, from 2.33, "Cannot build …").
pub fn says_missing(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("will be built:")
        || l.contains("will be fetched")
        || l.contains("unable to start any build")
        || l.contains("local builds are disabled")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_nix_prints_when_something_is_missing() {
        // Recorded on the lab: 2.8, 2.26, 2.34 with the check's flags on a missing #chain.
        for line in [
            r#"@nix {"action":"msg","level":3,"msg":"these 3 derivations will be built:"}"#,
            r#"@nix {"action":"msg","level":3,"msg":"this path will be fetched (0.01 MiB download, 0.01 MiB unpacked):"}"#,
            "error: unable to start any build; either increase '--max-jobs' or enable remote builds.",
            "                           Unable to start any build;",
            "       Reason: local builds are disabled (max-jobs = 0)",
        ] {
            assert!(says_missing(line), "{line}");
        }
        assert!(!says_missing(
            "error: flake 'path:/x' does not provide attribute 'nope'"
        ));
    }

    #[test]
    fn skipped_where_it_changes_the_meaning() {
        assert!(applies(Runner::Nix, &[], false, false));
        assert!(!applies(Runner::Nix, &[], true, false));
        assert!(!applies(Runner::Nix, &[], false, true));
        assert!(applies(Runner::Nix, &[], false, false));
        assert!(!applies(Runner::Nh { as_root: true }, &[], false, false));
        assert!(!applies(
            Runner::Nix,
            &["--".into(), "x".into()],
            false,
            false
        ));
    }
}
