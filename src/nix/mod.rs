//! Talking to the local nix: its version, its settings, the derivation graph of installables, and
//! which store paths are valid. Every command here picks the spelling that the detected version
//! understands (see `../shared/NIX-FACTS.md`, "Commands that changed between versions").

pub mod config;
pub mod derivation;

use crate::dispatch::NixVersion;
use crate::{Error, Result};
use std::ffi::OsStr;
use std::process::Stdio;
use tokio::process::Command;

/// The experimental features every nix command of ours needs, on every version.
pub const FEATURES: &str = "nix-command flakes";

/// The local nix installation: where it is and what version it is.
#[derive(Debug, Clone)]
pub struct Nix {
    /// Its version, as `nix --version` reports it.
    pub version: NixVersion,
}

/// Refuses a nix older than 2.4: it has no `--extra-experimental-features`, no
/// `--log-format internal-json` and no flakes, so every command nixdispatch runs would fail.
fn supported(version: &NixVersion) -> Result<()> {
    if version.at_least(2, 4) {
        Ok(())
    } else {
        Err(Error::input(format!(
            "nix {version} is too old: nixdispatch needs Nix 2.4 or later (2.8+ is tested); upgrade nix"
        )))
    }
}

impl Nix {
    /// Finds nix on PATH and asks its version.
    pub async fn detect() -> Result<Nix> {
        let out = Command::new("nix")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::NotFound => Error::input(
                    "nix is not on PATH: install Nix (https://nixos.org/download) or fix PATH",
                ),
                _ => Error::io("running `nix --version`", err),
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = NixVersion::parse(text.trim())?;
        supported(&version)?;
        Ok(Nix { version })
    }

    /// A `nix` command with the experimental features we rely on turned on.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("nix");
        cmd.arg("--extra-experimental-features")
            .arg(FEATURES)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a nix command to completion and returns its stdout; a failure becomes `Error::Input`
    /// with nix's own last error line, since every caller runs it on user input (installables,
    /// configuration).
    pub async fn output<I, S>(&self, program: &str, args: I) -> Result<Vec<u8>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = if program == "nix" {
            self.command()
        } else {
            let mut cmd = Command::new(program);
            cmd.stdin(Stdio::null()).kill_on_drop(true);
            cmd
        };
        cmd.args(args);
        let what = format!("{program} {}", describe(cmd.as_std()));
        let out = cmd
            .output()
            .await
            .map_err(|err| Error::io(format!("running `{what}`"), err))?;
        if !out.status.success() {
            return Err(Error::Input(format!(
                "`{what}` failed: {}",
                last_error_line(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(out.stdout)
    }
}

impl Nix {
    /// Whether the local store trusts us (`nix store ping`'s `Trusted:`, Nix 2.15+); `None`
    /// when nix does not say. An untrusted daemon client's `--option builders`,
    /// `builders-use-substitutes` and extra substituters are ignored by the daemon.
    pub async fn local_trust(&self) -> Option<bool> {
        let out = self.output("nix", ["store", "ping"]).await.ok()?;
        String::from_utf8_lossy(&out)
            .lines()
            .find_map(|l| l.strip_prefix("Trusted:"))
            .map(|v| v.trim() == "1")
    }
}

/// Whether we are a non-root user talking to a nix daemon (multi-user install): then the daemon,
/// not us, decides which of our settings count, and it opens builder connections as root.
pub fn is_daemon_client() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    !root && std::path::Path::new("/nix/var/nix/daemon-socket/socket").exists()
}

/// The first arguments of a command, for messages (store paths make full argv unreadable).
fn describe(cmd: &std::process::Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shown: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--extra-experimental-features" && *a != FEATURES)
        .take(4)
        .collect();
    let more = if args.len() > shown.len() + 2 {
        " …"
    } else {
        ""
    };
    format!("{}{more}", shown.join(" "))
}

/// The line of nix's stderr that says what went wrong: the first `error:` line, else the last
/// non-empty one. Nix colours its messages; the escapes are removed.
pub fn last_error_line(stderr: &str) -> String {
    let clean = strip_ansi(stderr);
    let lines: Vec<&str> = clean
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| l.starts_with("error:"))
        .or_else(|| lines.last())
        .copied()
        .unwrap_or("(no message)");
    line.trim_start_matches("error:").trim().to_owned()
}

/// Removes ANSI escape sequences (nix colours errors even when not on a terminal).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_prefers_the_error() {
        let stderr = "warning: something\n\u{1b}[31;1merror:\u{1b}[0m flake 'path:/x' does not provide attribute 'nope'\n       Did you mean foo?\n";
        assert_eq!(
            last_error_line(stderr),
            "flake 'path:/x' does not provide attribute 'nope'"
        );
    }

    #[test]
    fn error_line_falls_back_to_the_last_line() {
        assert_eq!(last_error_line("one\ntwo\n\n"), "two");
        assert_eq!(last_error_line(""), "(no message)");
    }
}

#[cfg(test)]
mod supported_tests {
    use super::*;

    #[test]
    fn nix_older_than_2_4_is_bad_input() {
        for (text, ok) in [
            ("nix (Nix) 2.3.16", false),
            ("nix (Nix) 1.11.16", false),
            ("nix (Nix) 2.4", true),
            ("nix (Nix) 2.8.0", true),
            ("nix (Lix, like Nix) 2.91.1", true),
        ] {
            let version = NixVersion::parse(text).expect("a version");
            let checked = supported(&version);
            assert_eq!(checked.is_ok(), ok, "{text}");
            if let Err(err) = checked {
                assert_eq!(err.code(), 2);
                assert!(err.to_string().contains("too old"), "{err}");
            }
        }
    }
}
