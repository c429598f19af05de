//! Whose ssh nix will use for a builder, and what can be learned without it.
//!
//! A single-user or root client's nix opens builder connections as the user running nixdispatch:
//! our own probe is the truth. A non-root user of a nix-daemon is different: the daemon connects
//! as root, with root's key, `known_hosts` and ssh config, none of which the user can read. So
//! for a daemon client a builder is known in stages:
//! - **alive**: its sshd sends its banner (`SSH-2.0-…`) after a TCP connect, before any
//!   credentials; this catches down, refused and tarpit hosts for anyone.
//! - **verified**: root's own ssh answered, or failed with root's real reason: asked through
//!   `sudo -n ssh …` (only tried when the user is in a sudo group and sudo needs no password),
//!   else through the daemon itself when it trusts us ([`super::through_daemon`]).
//! - The user's own ssh, when it reaches the same host, still answers truthfully what the
//!   builder's store holds; it says nothing about root's credentials.
//!
//! When nothing verifies a builder, it stays "alive, not verified": the plan leaves it to nix.

use super::{classify_ssh_error, ssh_address, ProbeFailure, RemoteInfo, INFO_SCRIPT};
use crate::machines::Machine;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Whose ssh credentials nix will use to reach builders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// nix runs as us (single-user install, or root): our ssh is nix's ssh.
    Own(String),
    /// A nix-daemon opens builder connections as root.
    Daemon,
}

impl Identity {
    /// The identity of this process's nix: the daemon's for a non-root daemon client.
    pub fn current(daemon_client: bool, user: &str) -> Identity {
        if daemon_client {
            Identity::Daemon
        } else {
            Identity::Own(user.to_owned())
        }
    }

    /// The name shown in `probe --json`'s `identity`.
    pub fn label(&self) -> String {
        match self {
            Identity::Own(user) => user.clone(),
            Identity::Daemon => "root".to_owned(),
        }
    }
}

/// What a credential-free look at the builder's sshd found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The sshd sent its banner in time.
    Alive,
    /// Nothing usable answered: refused, timed out, no banner.
    Dead(ProbeFailure),
    /// It could not be told from here (the name resolves only through someone else's ssh
    /// config, or the connection goes through a proxy).
    Unknown(String),
}

/// Where ssh would connect for this machine, as this user's ssh config says (`ssh -G`).
async fn resolve(machine: &Machine, ssh_opts: &[String]) -> Result<(String, u16), String> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-G").args(ssh_opts);
    cmd.args(
        ssh_address(machine)
            .map_err(|e| e.to_string())?
            .destination_args(),
    );
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .map_err(|err| format!("cannot run ssh -G: {err}"))?;
    parse_ssh_g(&String::from_utf8_lossy(&out.stdout))
}

/// Reads `ssh -G`'s `hostname` and `port`; a proxy makes a direct look meaningless.
fn parse_ssh_g(text: &str) -> Result<(String, u16), String> {
    let mut host = None;
    let mut port = 22;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        match key {
            "hostname" => host = Some(value.trim().to_owned()),
            "port" => port = value.trim().parse().unwrap_or(22),
            "proxycommand" | "proxyjump" if value.trim() != "none" => {
                return Err(format!("ssh goes through a proxy ({key})"));
            }
            _ => {}
        }
    }
    host.map(|h| (h, port))
        .ok_or_else(|| "ssh -G printed no host name".to_owned())
}

/// Connects to the machine's sshd and waits for its banner, within `timeout`. Needs no key.
pub async fn liveness(machine: &Machine, timeout: Duration, ssh_opts: &[String]) -> Liveness {
    let work = async {
        let (host, port) = match resolve(machine, ssh_opts).await {
            Ok(hp) => hp,
            Err(why) => return Liveness::Unknown(why),
        };
        let addrs: Vec<std::net::SocketAddr> =
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(a) => a.collect(),
                Err(_) => {
                    return Liveness::Unknown(format!(
                        "{host} does not resolve for this user (root's ssh config may name it)"
                    ))
                }
            };
        let mut last = ProbeFailure::Ssh("no address".to_owned());
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(mut stream) => {
                    let mut buf = [0u8; 64];
                    let mut got = Vec::new();
                    while got.len() < 8 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    return if got.starts_with(b"SSH-") {
                        Liveness::Alive
                    } else if got.is_empty() {
                        Liveness::Dead(ProbeFailure::Closed)
                    } else {
                        Liveness::Dead(ProbeFailure::NotSshServer(format!("{host}:{port}")))
                    };
                }
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = ProbeFailure::Refused;
                }
                Err(err) => last = ProbeFailure::Ssh(err.to_string()),
            }
        }
        Liveness::Dead(last)
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Liveness::Dead(ProbeFailure::NoBanner(timeout)))
}

/// Whether `sudo -n` may run commands as root without asking. Tried only for members of a
/// sudo group (wheel, sudo, admin), so that users without sudo never see "incident reported".
pub async fn sudo_works() -> bool {
    let groups = Command::new("id")
        .arg("-Gn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let in_group = groups.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .any(|g| matches!(g, "wheel" | "sudo" | "admin"))
    });
    if !in_group {
        return false;
    }
    let ok = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(crate::deadlines::LOCAL_CHECK, ok).await,
        Ok(Ok(s)) if s.success()
    )
}

/// Root's own ssh to the builder (`sudo -n ssh …`), as the daemon would open it: root's key from
/// the machines line, root's known_hosts and config; not the user's `NIX_SSHOPTS`.
pub(super) async fn probe_as_root(
    machine: &Machine,
    timeout: Duration,
) -> Result<RemoteInfo, String> {
    let dir = tempfile::Builder::new()
        .prefix("nixdispatch-root-")
        .tempdir()
        .map_err(|err| format!("cannot create a temporary directory: {err}"))?;
    let mut cmd = Command::new("sudo");
    cmd.args(["-n", "ssh", "-x", "-a", "-o", "BatchMode=yes", "-o"])
        .arg(format!(
            "ConnectTimeout={}",
            timeout.as_secs_f64().ceil().max(1.0)
        ));
    if let Some(key) = &machine.ssh_key {
        cmd.arg("-i").arg(key);
    }
    let ssh = ssh_address(machine).map_err(|e| e.to_string())?;
    if let Ok(Some(line)) = machine.known_hosts_line() {
        cmd.args(super::master::pin_host_key(&line, dir.path())?);
    }
    cmd.args(ssh.destination_args()).arg(INFO_SCRIPT);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| ProbeFailure::TimedOut(Some(timeout)).to_string())?
        .map_err(|err| format!("cannot run sudo: {err}"))?;
    if !out.status.success() && out.stdout.is_empty() {
        return Err(classify_ssh_error(&String::from_utf8_lossy(&out.stderr)).to_string());
    }
    let info = RemoteInfo::parse(&String::from_utf8_lossy(&out.stdout));
    if info.nix_version.is_none() {
        return Err(ProbeFailure::NixMissing.to_string());
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_g_gives_where_to_connect() {
        let text = "user root\nhostname 127.0.0.1\nport 2222\nproxycommand none\n";
        assert_eq!(parse_ssh_g(text), Ok(("127.0.0.1".to_owned(), 2222)));
        assert_eq!(parse_ssh_g("hostname h\n"), Ok(("h".to_owned(), 22)));
    }

    #[test]
    fn a_proxy_makes_liveness_unknowable() {
        let text = "hostname h\nport 22\nproxyjump bastion\n";
        assert!(parse_ssh_g(text).is_err());
    }
}
