//! Asking the nix-daemon itself what a builder's store holds, with root's ssh: for a daemon
//! client the daemon trusts, and only then (an untrusted client's substituters are ignored).
//!
//! `nix-store -r --dry-run PATHS --option substituters 'ssh-ng://HOST?ssh-key=KEY'` makes the
//! daemon open that store as root (root's key, known_hosts, ssh config) and list what it would
//! fetch from it. Seen here (Nix 2.26 daemon, 2026-11-29): the list comes on stderr after
//! "this path will be fetched" / "these N paths will be fetched", exit 0 (paths nobody has go
//! under "don't know how to build these paths", still exit 0); when root's ssh fails, exit 1 and
//! "error: failed to start SSH connection to 'root@seasmoke'". Unsigned paths are listed too.
//! An answer is root's own: it verifies the builder as the daemon will reach it.
//!
//! The question goes to the builder's legacy `ssh://` store even when the machines line says
//! `ssh-ng://` (same user, host, key and host key; only nix's protocol on the connection
//! differs). Measured here (Nix 2.26 daemon, 30 ms each way, no root control master,
//! 2026-11-30): three paths the builder does not hold took 2.38 s over `ssh-ng://` (the daemon
//! drops the connection after each "path is not valid" answer and opens a new ssh session for
//! the next path) and 0.82 s over `ssh://` (one `nix-store --serve` session, one batch); paths
//! it holds, 0.9 s either way. A line with its own `remote-program` keeps its scheme.

use crate::machines::Machine;
use crate::store_path::StorePath;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Paths per call (command-line length stays far below the limits).
const BATCH: usize = 500;

/// The paths among `paths` that the daemon, as root, finds in `machine`'s store. `Err` carries
/// nix's own line when root's connection fails.
pub async fn held(
    machine: &Machine,
    paths: &[StorePath],
    timeout: Duration,
) -> Result<BTreeSet<String>, String> {
    let mut found = BTreeSet::new();
    // At least one call, even with nothing to ask: the answer verifies root's ssh.
    let probe_path =
        [
            StorePath::parse("/nix/store/00000000000000000000000000000000-nixdispatch-probe")
                .map_err(|e| e.to_string())?,
        ];
    let batches: Vec<&[StorePath]> = if paths.is_empty() {
        vec![&probe_path[..]]
    } else {
        paths.chunks(BATCH).collect()
    };
    for batch in batches {
        let mut cmd = Command::new("nix-store");
        cmd.args(["-r", "--dry-run", "--option", "substituters"])
            .arg(query_uri(machine))
            .args(batch.iter().map(StorePath::as_str))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| {
                format!(
                    "the nix daemon did not answer within {}",
                    super::seconds(timeout)
                )
            })?
            .map_err(|err| format!("cannot run nix-store: {err}"))?;
        let text = crate::log::strip_ansi(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            return Err(crate::nix::last_error_line(&text));
        }
        found.extend(will_be_fetched(&text));
    }
    Ok(found)
}

/// The store URI the daemon is asked to open: `ssh-ng://` as `ssh://` (see the module docs).
fn query_uri(machine: &Machine) -> String {
    let uri = machine.store_uri();
    let own_program = machine
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("remote-program=")));
    match uri.strip_prefix("ssh-ng://") {
        Some(rest) if !own_program => format!("ssh://{rest}"),
        _ => uri,
    }
}

/// The paths `nix-store -r --dry-run` lists as to be fetched.
fn will_be_fetched(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.contains("will be fetched") {
            inside = true;
            continue;
        }
        let item = line.trim();
        if inside && line.starts_with(' ') && item.starts_with('/') {
            out.push(item.to_owned());
        } else {
            inside = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(line: &str) -> Machine {
        let mut none = |_: &std::path::Path| None;
        match crate::machines::parse_machines(line, "test", &mut none) {
            Ok(mut m) if m.len() == 1 => m.remove(0),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn the_daemon_is_asked_over_the_legacy_protocol() {
        assert_eq!(
            query_uri(&machine(
                "ssh-ng://root@seasmoke x86_64-linux /root/k 2 1 - - -"
            )),
            "ssh://root@seasmoke?ssh-key=/root/k"
        );
        assert_eq!(query_uri(&machine("ssh://b")), "ssh://b");
        assert_eq!(
            query_uri(&machine("ssh-ng://b?remote-program=/opt/nix-daemon")),
            "ssh-ng://b?remote-program=/opt/nix-daemon"
        );
    }

    #[test]
    fn reads_the_paths_to_be_fetched() {
        let text = "these 2 paths will be fetched (0.00 MiB download, 0.00 MiB unpacked):\n  /nix/store/aaa-chain-1\n  /nix/store/bbb-chain-2\ndon't know how to build these paths:\n  /nix/store/ccc-x\n";
        assert_eq!(
            will_be_fetched(text),
            ["/nix/store/aaa-chain-1", "/nix/store/bbb-chain-2"]
        );
        assert!(
            will_be_fetched("don't know how to build these paths:\n  /nix/store/c-x\n").is_empty()
        );
        assert_eq!(
            will_be_fetched(
                "this path will be fetched (0.00 MiB download):\n  /nix/store/aaa-hello\n"
            ),
            ["/nix/store/aaa-hello"]
        );
    }
}
