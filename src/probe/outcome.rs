//! Why a probe did not reach a builder, as a value: `doctor` and the plan match on it, and
//! [`fmt::Display`] below is the one place it becomes the words users read (`probe`, `plan`,
//! `doctor`, the contract's JSON `error`).

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Why a builder is not reachable, as far as the probe could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Nothing listens on the port.
    Refused,
    /// No answer within the connect timeout; `None` when ssh itself said it timed out.
    TimedOut(Option<Duration>),
    /// A TCP connection, but no ssh banner within the timeout (the liveness check).
    NoBanner(Duration),
    /// The builder's host key differs from the one known_hosts (or the machines line) pins.
    HostKeyMismatch,
    /// ssh could not verify the builder's host key (unknown, or no match).
    HostKeyUnverified,
    /// The builder refused our key.
    AuthFailed,
    /// The builder closed the connection before ssh got in.
    Closed,
    /// The host name does not resolve.
    UnknownHost,
    /// No route to the host.
    NoRoute,
    /// Something answers at this address and port, but not ssh (`host:port`).
    NotSshServer(String),
    /// ssh failed some other way: its own first line.
    Ssh(String),
    /// ssh got in, but the builder's shell does not run commands.
    ShellBroken,
    /// The connection broke while asking (the error).
    ConnectionBroke(String),
    /// `nix-store` is not on the builder's PATH for non-interactive ssh.
    NixMissing,
    /// Not an ssh store (its scheme): nixdispatch probes only ssh:// and ssh-ng://.
    NotProbed(String),
    /// Root's ssh, which the nix-daemon uses, fails (its reason, in ssh's or nix's words).
    RootSsh(String),
    /// Our ssh reached it, but this nix cannot use it (why, in one line).
    NixCannotUse(String),
    /// The builder is this machine: its store is this run's store (same boot, same store
    /// directory), so nix would wait forever building there (NixOS/nix#2029).
    ThisMachine,
    /// It does not trust us, so nix hands it whole derivations, and its own builders name
    /// this machine (the host): it would pass the build back here (NixOS/nix#10740).
    ForwardsBack(String),
    /// Something on this machine failed before ssh could try (a directory, a file, running
    /// ssh): the whole line.
    Local(String),
}

impl ProbeFailure {
    /// The failure's headline alone, without the advice that follows it (`host key mismatch`,
    /// `timed out after 3s`): for a note that adds its own.
    pub fn headline(&self) -> String {
        let text = self.to_string();
        match text.split_once(':') {
            Some((head, _)) => head.to_owned(),
            None => text,
        }
    }
}

impl fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeFailure::Refused => f.write_str("connection refused"),
            ProbeFailure::TimedOut(None) => f.write_str("timed out"),
            ProbeFailure::TimedOut(Some(after)) => {
                write!(f, "timed out after {}", super::seconds(*after))
            }
            ProbeFailure::NoBanner(after) => {
                write!(f, "timed out after {} (no ssh banner)", super::seconds(*after))
            }
            ProbeFailure::HostKeyMismatch => f.write_str(
                "host key mismatch: the builder's host key is not the one in known_hosts (or the machines line); if the change is expected, update it",
            ),
            ProbeFailure::HostKeyUnverified => f.write_str(
                "host key verification failed: the builder's host key is not known or does not match; add it to known_hosts or the machines line",
            ),
            ProbeFailure::AuthFailed => {
                f.write_str("authentication failed: the builder refused our key")
            }
            ProbeFailure::Closed => {
                f.write_str("the builder closed the connection (is its sshd running?)")
            }
            ProbeFailure::UnknownHost => f.write_str("unknown host: the name does not resolve"),
            ProbeFailure::NoRoute => f.write_str("no route to host"),
            ProbeFailure::NotSshServer(at) => write!(f, "{at} answers, but not with ssh"),
            ProbeFailure::Ssh(line) => f.write_str(line),
            ProbeFailure::ShellBroken => f.write_str("the builder's shell does not run commands"),
            ProbeFailure::ConnectionBroke(err) => write!(f, "the connection broke: {err}"),
            ProbeFailure::NixMissing => f.write_str(
                "nix not found on the builder (nix-store is not on its PATH for non-interactive ssh)",
            ),
            ProbeFailure::NotProbed(scheme) => write!(
                f,
                "{scheme} stores are not probed: only ssh:// and ssh-ng:// builders are"
            ),
            ProbeFailure::RootSsh(reason) => {
                write!(f, "root's ssh (the nix-daemon's) fails: {reason}")
            }
            ProbeFailure::ThisMachine => f.write_str(
                "this machine under another name: its store is this run's own store, where nix would wait forever on its own locks (NixOS/nix#2029); left out",
            ),
            ProbeFailure::ForwardsBack(host) => write!(
                f,
                "it does not trust nix's ssh user and its own builders name {host}, this machine: nix would hand it whole derivations, which it would pass back here, where this run holds their locks, forever (NixOS/nix#10740); left out: add that user to its trusted-users, or leave this machine out of its builders",
            ),
            ProbeFailure::NixCannotUse(why) | ProbeFailure::Local(why) => f.write_str(why),
        }
    }
}

/// As its words: the contract's JSON `error` is one human line.
impl Serialize for ProbeFailure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Turns ssh's log into the failure it describes.
pub fn classify_ssh_error(log: &str) -> ProbeFailure {
    let lower = log.to_lowercase();
    if lower.contains("remote host identification has changed")
        || lower.contains("host key for") && lower.contains("has changed")
    {
        ProbeFailure::HostKeyMismatch
    } else if lower.contains("host key verification failed") {
        ProbeFailure::HostKeyUnverified
    } else if lower.contains("connection closed") || lower.contains("connection reset") {
        ProbeFailure::Closed
    } else if lower.contains("connection refused") {
        ProbeFailure::Refused
    } else if lower.contains("timed out") {
        ProbeFailure::TimedOut(None)
    } else if lower.contains("permission denied")
        || lower.contains("too many authentication failures")
    {
        ProbeFailure::AuthFailed
    } else if lower.contains("could not resolve hostname") {
        ProbeFailure::UnknownHost
    } else if lower.contains("no route to host") || lower.contains("network is unreachable") {
        ProbeFailure::NoRoute
    } else {
        let first_line = log
            .lines()
            .map(str::trim)
            .find(|l| {
                !l.is_empty() && !l.starts_with("@@@") && !l.starts_with("Warning: Permanently")
            })
            .unwrap_or("ssh failed without a message");
        ProbeFailure::Ssh(first_line.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_users_read() {
        let three = Some(Duration::from_secs(3));
        assert_eq!(
            ProbeFailure::TimedOut(three).to_string(),
            "timed out after 3s"
        );
        assert_eq!(
            ProbeFailure::NoBanner(Duration::from_millis(1500)).to_string(),
            "timed out after 1.5s (no ssh banner)"
        );
        assert_eq!(
            ProbeFailure::RootSsh("connection refused".into()).to_string(),
            "root's ssh (the nix-daemon's) fails: connection refused"
        );
        assert_eq!(
            ProbeFailure::NotProbed("file".into()).to_string(),
            "file stores are not probed: only ssh:// and ssh-ng:// builders are"
        );
        assert_eq!(
            ProbeFailure::HostKeyMismatch.headline(),
            "host key mismatch"
        );
        assert_eq!(ProbeFailure::Refused.headline(), "connection refused");
    }

    #[test]
    fn serialises_as_its_words() {
        let json = serde_json::to_string(&Some(ProbeFailure::AuthFailed)).unwrap();
        assert_eq!(
            json,
            "\"authentication failed: the builder refused our key\""
        );
    }

    #[test]
    fn classifies_ssh_errors() {
        assert_eq!(
            classify_ssh_error("ssh: connect to host 127.0.0.1 port 2222: Connection refused\r\n")
                .to_string(),
            "connection refused"
        );
        assert!(
            classify_ssh_error("root@127.0.0.1: Permission denied (publickey).")
                .to_string()
                .starts_with("authentication failed")
        );
        assert!(classify_ssh_error(
            "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        )
        .to_string()
        .starts_with("host key mismatch"));
        assert!(classify_ssh_error("No ED25519 host key is known for seasmoke and you have requested strict checking.\r\nHost key verification failed.\r\n").to_string().starts_with("host key verification failed"));
        assert_eq!(
            classify_ssh_error("Connection timed out during banner exchange").to_string(),
            "timed out"
        );
        assert_eq!(
            classify_ssh_error("something odd\n").to_string(),
            "something odd"
        );
    }
}
