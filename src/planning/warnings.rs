//! The warnings of planning: dead caches left out of the run, builders that are this machine
//! or would pass builds back here, `--builder` given to a daemon that ignores it.

use crate::builder::Builder;
use crate::probe;
use crate::settings::Settings;

/// The substituters to hand nix when some are dead (`None`: nix's own will do), and one line
/// per dead one. A daemon that does not trust us still takes a `substituters` list made of its
/// own substituters and trusted-substituters (nix's daemon filters the list, it does not drop
/// it), which is all `configured` holds for such a user ([`crate::sources::substituters::apply`]).
/// Seen here (2026-12-04): untrusted clients of Nix 2.8 and 2.26 daemons whose substituters
/// included a silent cache built without waiting on it.
///
/// A dead cache that only a flake's `nixConfig` adds (not in `nix_own`, nix's configuration
/// without the flake) cannot be left out: nix applies the flake's `extra-substituters` after
/// the command line. Its line says what nix will spend on it instead.
pub(super) fn leave_out_dead(
    configured: &[String],
    nix_own: &[String],
    dead: &[(String, String)],
) -> (Option<Vec<String>>, Vec<String>) {
    if dead.is_empty() {
        return (None, Vec::new());
    }
    let lines = dead
        .iter()
        .map(|(uri, why)| {
            if nix_own.contains(uri) {
                format!(
                    "cache {uri} is left out of this run: {why} (nix itself would spend \
                     retries, or minutes, on it)"
                )
            } else {
                format!(
                    "cache {uri} ({why}) comes from the flake's nixConfig, which nix applies \
                     after nixdispatch's options: nix will still try it, about 4 s of retries \
                     when it refuses, up to stalled-download-timeout (300 s) and retries when \
                     it stays silent; remove it from the flake's nixConfig"
                )
            }
        })
        .collect();
    let live = configured
        .iter()
        .filter(|s| !dead.iter().any(|(d, _)| d == *s))
        .cloned()
        .collect();
    (Some(live), lines)
}

/// One line for a builder that is this machine (left out by the probe), or that may pass what
/// it is given back here (NixOS/nix#10740), with the fix.
pub(super) fn loop_warning(b: &Builder) -> Option<String> {
    let host = b.host();
    match &b.failure() {
        Some(probe::ProbeFailure::ThisMachine) => {
            return Some(format!("builder {host} is {}", b.failure_words()))
        }
        Some(probe::ProbeFailure::ForwardsBack(_)) => {
            return Some(format!("builder {host}: {}", b.failure_words()))
        }
        _ => {}
    }
    if !(b.reachable() && b.may_forward) {
        return None;
    }
    let (who, fix) = match b.machine.uri.ssh().and_then(|a| a.user.clone()) {
        Some(user) => (user.clone(), user),
        None => ("the user nix logs in as".to_owned(), "that user".to_owned()),
    };
    Some(format!(
        "builder {host} does not trust {who} and has builders of its own, so nix hands it whole \
         derivations, which it may pass on; if its builders include this machine, both wait \
         forever (NixOS/nix#10740): add {fix} to {host}'s trusted-users (it then builds what it \
         is given itself), or leave this machine out of {host}'s builders"
    ))
}

/// [`ignored_builder`], when `--builder` or `--builders` was given to a daemon that ignores it;
/// when the daemon's trust could not be told, that it may.
pub(super) fn ignored_builder_warning(settings: &Settings) -> Option<String> {
    let daemon = settings.daemon()?;
    if let Some(flag) = daemon.ignored_cli_builders {
        return Some(ignored_builder(flag));
    }
    let per_run = settings.builders_origin() == "--builder";
    (per_run && daemon.trusted.is_none()).then(|| MAYBE_IGNORED_BUILDER.to_owned())
}

/// The warning for `--builder` given to a daemon whose trust is unknown.
pub const MAYBE_IGNORED_BUILDER: &str = "the nix daemon does not say whether it trusts you \
(Nix before 2.15) and nixdispatch could not tell: if it does not, it ignores --builder and uses \
its own builders; add yourself to trusted-users (nix.settings.trusted-users on NixOS) to be sure";

/// The warning for `flag` (`--builder`, or `build`'s `--builders`) given to an untrusted daemon
/// client.
pub fn ignored_builder(flag: &str) -> String {
    format!(
        "{flag} has no effect: the nix daemon does not trust you, so it ignores per-run \
builders and uses its own (nix's builders setting, planned with here); add yourself to \
trusted-users (nix.settings.trusted-users on NixOS) to choose builders per run"
    )
}

/// Drops the line naming a builder left out as this machine or as one that would pass builds
/// back here when the plan's reason already says it (why no builder took the build).
pub(super) fn drop_said_in_reason(warnings: &mut Vec<String>, builders: &[Builder], reason: &str) {
    warnings.retain(|w| {
        !builders.iter().any(|b| {
            matches!(
                b.failure(),
                Some(probe::ProbeFailure::ThisMachine | probe::ProbeFailure::ForwardsBack(_))
            ) && w.starts_with(&format!("builder {}", b.host()))
                && reason.contains(&format!("{}: {}", b.host(), b.failure_words()))
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(unverified: bool) -> Builder {
        let mut b = Builder::declared_for_test(
            crate::builder::BuilderId(0),
            "ssh-ng://root@seasmoke x86_64-linux",
        );
        b.set_status(if unverified {
            crate::builder::Status::Unverified {
                alive: Some(true),
                note: Some("alive; not verified".to_owned()),
                connection: None,
            }
        } else {
            crate::builder::Status::Verified { connection: None }
        });
        b.systems = Vec::new();
        b
    }

    #[test]
    fn dead_substituters_are_left_out_with_one_line_each() {
        let configured: Vec<String> = ["http://a", "http://dead", "file:///c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            leave_out_dead(&configured, &configured, &[]),
            (None, Vec::new())
        );
        let dead = vec![("http://dead".to_owned(), "cannot connect".to_owned())];
        let (live, lines) = leave_out_dead(&configured, &configured, &dead);
        assert_eq!(
            live,
            Some(vec!["http://a".to_owned(), "file:///c".to_owned()])
        );
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("cache http://dead is left out of this run: cannot connect"),
            "{lines:?}"
        );
        // Added by the flake: nix adds it back after the command line, so the line says so.
        let (_, lines) = leave_out_dead(&configured, &configured[..1], &dead);
        assert!(lines[0].contains("nix will still try it"), "{lines:?}");
    }

    #[test]
    fn a_builder_that_may_forward_back_is_named_with_the_fix() {
        let mut b = state(false);
        assert_eq!(loop_warning(&b), None);
        b.may_forward = true;
        let line = loop_warning(&b).unwrap_or_default();
        assert!(line.contains("NixOS/nix#10740"), "{line}");
        assert!(
            line.contains("add root to seasmoke's trusted-users"),
            "{line}"
        );
        b.leave_out(probe::ProbeFailure::ThisMachine);
        let line = loop_warning(&b).unwrap_or_default();
        assert!(
            line.starts_with("builder seasmoke is this machine under another name"),
            "{line}"
        );
    }
}
