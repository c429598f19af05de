//! `nixdispatch probe`: probe every configured builder at once and report.

use crate::builder::Builder;
use crate::settings::Settings;
use crate::Result;

/// Probes and prints; exit 0 whatever the builders' state (the report is the result).
pub async fn run(settings: &Settings) -> Result<i32> {
    let probed = crate::probe::probe_for(settings, settings.builders(), false).await;
    let statuses = &probed;
    if settings.json() {
        let doc = serde_json::json!({ "builders": statuses });
        crate::output::stdout_line(&doc.to_string(), false)?;
        return Ok(0);
    }
    if statuses.is_empty() {
        crate::output::stderr_line(&format!(
            "no builders configured ({}): set nix's `builders` (nix.buildMachines on NixOS) or pass --builder",
            settings.builders_origin()
        ));
        return Ok(0);
    }
    if let Some(flag) = settings.daemon().and_then(|d| d.ignored_cli_builders) {
        crate::output::stderr_line(&format!(
            "warning: {}",
            crate::planning::ignored_builder(flag)
        ));
    }
    for s in statuses {
        crate::output::stdout_line(&describe(s, settings.daemon().is_some()), true)?;
    }
    Ok(0)
}

/// One line per builder: `seasmoke  reachable  12.5 ms  nix 2.26.3  x86_64-linux  trusted`.
/// `daemon_client`: a nix-daemon runs our builds, so a root-verified builder says so.
pub fn describe(s: &Builder, daemon_client: bool) -> String {
    if !s.reachable() {
        return format!(
            "{:<16} unreachable  {}  ({})",
            s.host(),
            s.failure()
                .as_ref()
                .map_or_else(|| "unknown error".to_owned(), ToString::to_string),
            s.machine.uri
        );
    }
    if !s.verified() {
        // Never "alive" for a builder whose sshd was not seen (its name resolves only for root).
        let stage = if s.alive() == Some(true) {
            "alive, not verified"
        } else {
            "not checked"
        };
        return format!(
            "{:<16} {stage}  {}  ({})",
            s.host(),
            s.note().as_deref().unwrap_or("nix decides"),
            s.machine.uri
        );
    }
    let trust = match s.trusted {
        Some(true) => "trusted",
        Some(false) => "not trusted",
        None => "trust unknown",
    };
    // A daemon client's verified builder was probed with root's ssh (the daemon's): say so.
    let trust = if s.identity.label() == "root" && daemon_client {
        format!("{trust} (as root, through sudo)")
    } else {
        trust.to_owned()
    };
    // A builder verified through the daemon or sudo had no round trip of ours measured.
    let rtt = s
        .rtt_ms
        .map_or_else(|| "rtt unknown".to_owned(), |ms| format!("{ms:>6.1} ms"));
    format!(
        "{:<16} reachable  {rtt}  nix {}  {}  {}  ({})",
        s.host(),
        s.nix_version.as_deref().unwrap_or("?"),
        s.systems.join(","),
        trust,
        s.machine.uri
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BuilderId;

    fn verified(rtt_ms: Option<f64>) -> Builder {
        let mut b = Builder::declared_for_test(BuilderId(0), "ssh-ng://seasmoke x86_64-linux");
        b.set_status(crate::builder::Status::Verified { connection: None });
        b.rtt_ms = rtt_ms;
        b
    }

    #[test]
    fn a_round_trip_that_was_not_measured_is_unknown_never_zero() {
        let line = describe(&verified(None), true);
        assert!(line.contains("rtt unknown"), "{line}");
        assert!(!line.contains(" ms"), "{line}");
        let line = describe(&verified(Some(12.5)), false);
        assert!(line.contains("12.5 ms"), "{line}");
    }
}
