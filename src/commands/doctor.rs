//! `nixdispatch doctor`: check the distributed-build setup and say how to fix what is wrong.

use super::probe::describe;
use crate::probe::probe_all;
use crate::settings::Settings;
use crate::{Error, Result};
use serde::Serialize;

mod signing_key;

/// One finding.
#[derive(Debug, Serialize)]
struct Check {
    /// `ok`, `warn` or `error`.
    level: &'static str,
    /// What was found.
    what: String,
    /// How to fix it, when something is wrong.
    fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Check {
    Check {
        level: "ok",
        what: what.into(),
        fix: None,
    }
}
fn warn(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        level: "warn",
        what: what.into(),
        fix: Some(fix.into()),
    }
}
fn error(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        level: "error",
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// Runs every check; exit 0 when nothing is an error, else exit 2 (a configuration problem).
pub async fn run(settings: &Settings) -> Result<i32> {
    let mut checks = Vec::new();
    let cfg = &settings.nix_config;
    checks.push(ok(format!(
        "nix {} on PATH, system {}",
        settings.nix.version, cfg.system
    )));

    if settings.builders.is_empty() {
        checks.push(warn(
            format!("no builders configured ({})", settings.builders_origin),
            "declare builders in nix (nix.buildMachines on NixOS, `builders = ...` or /etc/nix/machines) or pass --builder",
        ));
    }
    let local_trusted = settings.nix.local_trust().await;
    match local_trusted {
        Some(false) => checks.push(error(
            "the local nix daemon does not trust you: it ignores --builders, builders-use-substitutes and extra substituters from you",
            "add your user to trusted-users (nix.settings.trusted-users on NixOS) and restart nix-daemon",
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

    let probed = probe_all(
        &settings.builders,
        settings.connect_timeout,
        &settings.ssh_opts,
    )
    .await;
    for b in &probed {
        let s = &b.status;
        if !s.reachable {
            let reason = s.error.as_deref().unwrap_or("unreachable");
            let fix = if reason.starts_with("host key") {
                format!("check the key with `ssh {}` and update known_hosts, or put the host key in the machines line's 8th field", s.host)
            } else if reason.starts_with("authentication") {
                "authorize your key on the builder (and root's key, when nix-daemon opens the connection)".to_owned()
            } else if reason.starts_with("nix not found") {
                "make nix available to non-interactive ssh on the builder (e.g. NixOS, or PATH in ~/.bashrc / sshd SetEnv)".to_owned()
            } else {
                format!(
                    "check that {} is up and reachable with `ssh {}`",
                    s.host, s.host
                )
            };
            checks.push(error(format!("builder {}: {reason}", s.host), fix));
            continue;
        }
        if let Some((problem, fix)) = settings.nix.builder_limit(&b.machine) {
            checks.push(error(
                format!("builder {}: reachable, but {problem}", s.host),
                fix,
            ));
            continue;
        }
        checks.push(ok(format!("builder {}", describe(s))));
        if let Some(conn) = &b.connection {
            let keys = signing_key::published_keys(conn, settings.connect_timeout).await;
            checks.extend(signing_key::finding(
                &s.host,
                &keys,
                &cfg.trusted_public_keys,
            ));
        }
        if s.trusted == Some(false) {
            checks.push(warn(
                format!("builder {} does not trust you: it will refuse to build input-addressed derivations you send", s.host),
                format!("add your user to trusted-users on {} (nix.settings.trusted-users)", s.host),
            ));
        }
        if !s.systems.contains(&cfg.system) && !s.systems.is_empty() {
            checks.push(warn(
                format!(
                    "builder {} builds {} but this machine is {}",
                    s.host,
                    s.systems.join(","),
                    cfg.system
                ),
                "list the systems it can build in its machines line",
            ));
        }
    }
    if !settings.builders.is_empty() && crate::nix::is_daemon_client() {
        checks.push(warn(
            "nix-daemon opens builder connections as root, with root's ssh key, known_hosts and config, not yours",
            "check `sudo ssh BUILDER` works, or the daemon's builds fail where these probes succeed",
        ));
    }

    let errors = checks.iter().filter(|c| c.level == "error").count();
    if settings.json {
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
