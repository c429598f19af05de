//! `nixdispatch doctor`: check the distributed-build setup and say how to fix what is wrong.

mod canary;

use super::probe::describe;
use crate::probe::ProbeFailure;
use crate::settings::Settings;
use crate::{Error, Result};
use serde::Serialize;

mod signing_key;

/// How bad a finding is; shown and serialised as `ok`, `warn` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Error,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: the listing aligns the words with `{:<5}`.
        f.pad(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// One finding.
#[derive(Debug, Serialize)]
struct Check {
    /// How bad it is.
    level: Level,
    /// What was found.
    what: String,
    /// How to fix it, when something is wrong.
    fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Check {
    Check {
        level: Level::Ok,
        what: what.into(),
        fix: None,
    }
}
fn warn(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        level: Level::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}
fn error(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        level: Level::Error,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check; exit 0 when nothing is an error, else exit 2 (a configuration problem).
pub async fn run(settings: &Settings) -> Result<i32> {
    let mut checks = Vec::new();
    let cfg = settings.nix_config();
    checks.push(ok(format!(
        "nix {} on PATH, system {}",
        settings.nix().version,
        cfg.system
    )));

    if settings.builders().is_empty() {
        checks.push(warn(
            format!("no builders configured ({})", settings.builders_origin()),
            "declare builders in nix (nix.buildMachines on NixOS, `builders = ...` or /etc/nix/machines) or pass --builder",
        ));
    }
    let local_trusted = settings.nix().local_trust().await;
    match local_trusted {
        // Plain nix works for an untrusted user (the daemon uses its own builders): a warning.
        Some(false) => checks.push(warn(
            "the local nix daemon does not trust you: it ignores per-run builders, builders-use-substitutes and extra substituters from you, and builds with its own",
            "to choose builders per run, add your user to trusted-users (nix.settings.trusted-users on NixOS) and restart nix-daemon",
        )),
        Some(true) => checks.push(ok("the local nix store trusts you (builders and substituters given per run are honoured)")),
        None => {}
    }
    if !cfg.require_sigs {
        checks.push(warn(
            "require-sigs is false: any substitute is accepted unsigned",
            "turn require-sigs back on and sign your builder's paths (secret-key-files) instead",
        ));
    }

    let probed = crate::probe::probe_for(settings, settings.builders(), false).await;
    let daemon = settings.daemon().is_some();
    let mut canary_builders = Vec::new();
    for b in &probed {
        let s = b;
        if daemon && s.reachable() {
            // The real question is whether the daemon's builds get there: the canary below
            // answers it, for root, whatever the probe could verify.
            canary_builders.push(b);
            if !s.verified() {
                continue;
            }
        }
        if !s.reachable() {
            let reason = s.failure_words();
            let fix = match &s.failure() {
                Some(ProbeFailure::RootSsh(_)) => canary::fix_for(&reason, Some(&b.machine)),
                Some(ProbeFailure::HostKeyMismatch | ProbeFailure::HostKeyUnverified) => {
                    format!("check the key with `ssh {}` and update known_hosts, or put the host key in the machines line's 8th field", s.host())
                }
                Some(ProbeFailure::AuthFailed) => {
                    "authorize your key on the builder (and root's key, when nix-daemon opens the connection)".to_owned()
                }
                Some(ProbeFailure::ForwardsBack(_)) => format!(
                    "on {}: add the user nix logs in as to trusted-users (programs.nixdispatch.builderHost.trustedUsers), or leave this machine out of its builders",
                    s.host()
                ),
                Some(ProbeFailure::ThisMachine) => format!(
                    "leave {} out of this machine's builders (a fleet-wide list: filter out each host's own name); nixdispatch leaves it out meanwhile",
                    s.host()
                ),
                Some(ProbeFailure::NixMissing) => {
                    "make nix available to non-interactive ssh on the builder (e.g. NixOS, or PATH in ~/.bashrc / sshd SetEnv)".to_owned()
                }
                _ => format!(
                    "check that {} is up and reachable with `ssh {}`",
                    s.host(), s.host()
                ),
            };
            checks.push(error(format!("builder {}: {reason}", s.host()), fix));
            continue;
        }
        if let Some((problem, fix)) = settings.nix().builder_limit(&b.machine) {
            checks.push(error(
                format!("builder {}: reachable, but {problem}", s.host()),
                fix,
            ));
            continue;
        }
        checks.push(ok(format!("builder {}", describe(s, daemon))));
        if let Some(conn) = b.connection() {
            let keys = signing_key::published_keys(conn, settings.connect_timeout()).await;
            checks.extend(signing_key::finding(
                s.host(),
                &keys,
                &cfg.trusted_public_keys,
            ));
        }
        if s.trusted == Some(false) {
            checks.push(warn(
                format!("builder {} does not trust you: it will refuse to build input-addressed derivations you send", s.host()),
                format!("add your user to trusted-users on {} (nix.settings.trusted-users)", s.host()),
            ));
        }
        if !s.systems.contains(&cfg.system) && !s.systems.is_empty() {
            checks.push(warn(
                format!(
                    "builder {} builds {} but this machine is {}",
                    s.host(),
                    s.systems.join(","),
                    cfg.system
                ),
                "list the systems it can build in its machines line",
            ));
        }
    }
    if !canary_builders.is_empty() {
        canary_checks(settings, local_trusted, &canary_builders, &mut checks).await;
    }

    let errors = checks.iter().filter(|c| c.level == Level::Error).count();
    if settings.json() {
        let doc = serde_json::json!({ "checks": checks, "errors": errors });
        crate::output::stdout_line(&doc.to_string(), false)?;
    } else {
        for c in &checks {
            crate::output::stdout_line(&format!("{:<5} {}", c.level, c.what), true)?;
            if let Some(fix) = &c.fix {
                crate::output::stdout_line(&format!("      fix: {fix}"), true)?;
            }
        }
    }
    if errors > 0 {
        return Err(Error::input(format!(
            "doctor found {errors} problem(s) in the distributed-build setup: see the fixes above"
        )));
    }
    Ok(0)
}

/// For builders a daemon client could not verify: build the canary through the daemon and
/// report what root's ssh really does. A trusted user's canary goes to each builder alone; an
/// untrusted user's to the daemon's own builders, once.
async fn canary_checks(
    settings: &Settings,
    local_trusted: Option<bool>,
    builders: &[&crate::builder::Builder],
    checks: &mut Vec<Check>,
) {
    let limit = settings.deadlines().canary;
    let targets: Vec<Option<&crate::builder::Builder>> = if local_trusted == Some(false) {
        vec![None]
    } else {
        builders.iter().map(|b| Some(*b)).collect()
    };
    for target in targets {
        let machine = target.map(|b| &b.machine);
        let name = target.map_or("the daemon's builders".to_owned(), |b| b.host().to_owned());
        match canary::run(settings, machine, limit).await {
            canary::Outcome::Built(Some(on)) => checks.push(ok(format!(
                "the nix daemon built a canary on {on}: root's ssh reaches {name} (alive; verified by the canary)"
            ))),
            canary::Outcome::Built(None) => checks.push(warn(
                format!("the nix daemon built the canary for {name} locally, not on a builder"),
                "check nix.buildMachines (the daemon's builders) and that max-jobs 0 is honoured",
            )),
            canary::Outcome::Failed(why) => checks.push(error(
                format!(
                    "the nix daemon cannot build on {name}: {why} (the daemon connects as root, with root's key, known_hosts and ssh config, not yours)"
                ),
                canary::fix_for(&why, machine),
            )),
        }
    }
}
