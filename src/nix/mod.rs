//! Talking to the local nix: its version, its settings, the derivation graph of installables, and
//! which store paths are valid. Every command here picks the spelling that the nix in front of
//! it understands ([`capabilities`], with the table of what changed in which version), and every
//! reader takes every shape that any supported version prints.

pub mod build_json;
pub mod cache;
pub mod capabilities;
pub mod config;
pub mod daemon_trust;
pub mod derivation;
pub mod graph;
pub mod installables;
pub mod path_info;
pub mod version;

use crate::{Error, Result};
use capabilities::Capabilities;
use std::ffi::OsStr;
use std::process::Stdio;
use tokio::process::Command;
pub use version::{NixVersion, VersionError};

/// The experimental features every nix command of ours needs, on every version.
pub const FEATURES: &str = "nix-command flakes";

/// The local nix installation: where it is and what version it is.
#[derive(Debug, Clone)]
pub struct Nix {
    /// Its version, as `nix --version` reports it.
    pub version: NixVersion,
    /// What that version offers (a first guess: commands fall back when nix refuses one).
    pub caps: Capabilities,
}

impl Nix {
    /// Finds nix on PATH and asks its version (once per nix binary: [`cache`]).
    pub async fn detect() -> Result<Nix> {
        let mut lookup = cache::Lookup::open();
        if let Some(text) = lookup.as_ref().and_then(|l| l.version()) {
            if let Ok(version) = NixVersion::parse(text) {
                if !capabilities::too_old(&version) {
                    return Ok(Nix::with_version(version));
                }
            }
        }
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
        if capabilities::too_old(&version) {
            return Err(Error::Input(capabilities::too_old_message(&version)));
        }
        if let Some(lookup) = &mut lookup {
            lookup.save_version(text.trim());
        }
        Ok(Nix::with_version(version))
    }

    /// A nix of a known version (tests, and callers that asked already).
    pub fn with_version(version: NixVersion) -> Nix {
        Nix {
            caps: Capabilities::of(&version),
            version,
        }
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

    /// The attribute names of `FLAKE#ATTR`, without evaluating the values (`home`'s
    /// configurations).
    pub async fn attr_names(&self, flake: &str, attr: &str) -> Result<Vec<String>> {
        let out = self
            .output(
                "nix",
                [
                    "eval",
                    "--json",
                    &format!("{flake}#{attr}"),
                    "--apply",
                    "builtins.attrNames",
                ],
            )
            .await?;
        serde_json::from_slice(&out)
            .map_err(|e| Error::input(format!("{flake}#{attr} is not an attribute set: {e}")))
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
        // Interrupted, nix gets to stop what it started (crate::child::StopOnDrop).
        let child = cmd
            .kill_on_drop(false)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| Error::io(format!("running `{what}`"), err))?;
        let guard = crate::child::StopOnDrop::new(child.id());
        let out = child
            .wait_with_output()
            .await
            .map_err(|err| Error::io(format!("running `{what}`"), err))?;
        guard.disarm();
        if !out.status.success() {
            return Err(Error::Input(format!(
                "`{what}` failed: {}",
                last_error_line(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        Ok(out.stdout)
    }

    /// Runs `nix NEWER...`, and `nix OLDER...` instead when `prefer_newer` is false or nix says
    /// it does not know the newer spelling (`'info' is not a recognised command`). Other
    /// failures are `Error::Input` with nix's own error line, as in [`Nix::output`].
    pub async fn output_either(
        &self,
        prefer_newer: bool,
        newer: &[&str],
        older: &[&str],
    ) -> Result<Vec<u8>> {
        if prefer_newer {
            let mut cmd = self.command();
            cmd.args(newer);
            let out = cmd
                .output()
                .await
                .map_err(|err| Error::io(format!("running `nix {}`", newer.join(" ")), err))?;
            if out.status.success() {
                return Ok(out.stdout);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !capabilities::rejected_as_unknown(&stderr) {
                return Err(Error::Input(format!(
                    "`nix {}` failed: {}",
                    newer.join(" "),
                    last_error_line(&stderr)
                )));
            }
            tracing::debug!(newer = ?newer, "nix does not know this spelling; trying the older one");
        }
        self.output("nix", older).await
    }
}

impl Nix {
    /// Whether the local store trusts us (`nix store ping`'s `Trusted:`, Nix 2.15+); `None`
    /// when nix does not say. An untrusted daemon client's `--option builders`,
    /// `builders-use-substitutes` and extra substituters are ignored by the daemon.
    pub async fn local_trust(&self) -> Option<bool> {
        // The daemon's own answer over its socket (protocol 1.35+), without a nix process.
        let env = |k: &str| std::env::var(k).ok();
        if let Some(socket) = daemon_trust::socket_path(
            env("NIX_REMOTE").as_deref(),
            env("NIX_DAEMON_SOCKET_PATH").as_deref(),
            env("NIX_CONFIG").as_deref(),
        ) {
            if let Some(trusted) = daemon_trust::ask(socket).await {
                return Some(trusted);
            }
        }
        if self.caps.store_info {
            // 2.19+: the machine-readable form, on stdout.
            if let Ok(out) = self.output("nix", ["store", "info", "--json"]).await {
                return trusted_json(&serde_json::from_slice(&out).ok()?);
            }
        }
        // `store ping` prints its lines through nix's logger, i.e. on stderr (seen here on
        // 2.26 and 2.34; 2.8 has no Trusted: line at all).
        let out = self.command().args(["store", "ping"]).output().await.ok()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        match trusted_line(&text) {
            Some(trusted) => Some(trusted),
            None => self.trust_from_an_ignored_setting().await,
        }
    }

    /// A daemon that does not say whether it trusts us (before Nix 2.15, or a client older
    /// than that) still says when it ignores a restricted setting from an untrusted client:
    /// at debug level up to 2.21 (a warning after), which it relays to a client that asks for
    /// debug output. So `store ping` is sent one harmless restricted setting
    /// (`builders-use-substitutes`, which only matters to builds) and the daemon's words are
    /// looked for. `None` when the answer does not tell (nix failed, or took over 10 s).
    async fn trust_from_an_ignored_setting(&self) -> Option<bool> {
        let mut cmd = self.command();
        cmd.args([
            "store",
            "ping",
            "--option",
            "builders-use-substitutes",
            "true",
            "--debug",
        ]);
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), cmd.output())
            .await
            .ok()?
            .ok()?;
        out.status
            .success()
            .then(|| !ignored_as_untrusted(&String::from_utf8_lossy(&out.stderr)))
    }
}

/// Whether a daemon's log says it ignored a setting because the client is not trusted (Nix
/// 2.8's "ignoring the user-specified setting '…', because it is a restricted setting and you
/// are not a trusted user"; 2.22+ "Ignoring the client-specified setting …").
pub fn ignored_as_untrusted(log: &str) -> bool {
    log.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("because it is a restricted setting and you are not a trusted user")
    })
}

/// `trusted` of `nix store info --json`: `1`/`0` up to 2.2x, `true`/`false` on 2.34 (recorded).
pub fn trusted_json(json: &serde_json::Value) -> Option<bool> {
    match json.get("trusted")? {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => Some(n.as_u64()? != 0),
        _ => None,
    }
}

/// The `Trusted:` line of `nix store info` / `store ping` (2.15+; absent before).
pub fn trusted_line(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Trusted:"))
        .map(|v| v.trim() == "1")
}

impl Nix {
    /// Whether the local nix can use `machine` as a builder at all, as far as its version tells:
    /// `None` when it can, else the one line that says why not, what is needed and the fix.
    pub fn cannot_use_builder(&self, machine: &crate::machines::Machine) -> Option<String> {
        self.builder_limit(machine)
            .map(|(problem, fix)| format!("{problem}: {fix}"))
    }

    /// [`Nix::cannot_use_builder`] as (problem, fix), for `doctor`.
    pub fn builder_limit(&self, machine: &crate::machines::Machine) -> Option<(String, String)> {
        let ssh = machine.uri.ssh()?;
        let port = ssh.port?;
        if self.caps.ssh_uri_ports {
            return None;
        }
        Some((
            format!(
                "the port in {} needs Nix 2.31 or later here (this nix is {})",
                machine.uri, self.version
            ),
            format!(
                "write the port in ssh's config instead (`Host {}` / `Port {port}`, NIX_SSHOPTS=\"-F FILE\" for nix's ssh) and drop it from the URI, or upgrade nix",
                ssh.host,
            ),
        ))
    }
}

/// Whether we are a non-root user talking to a nix daemon (multi-user install): then the daemon,
/// not us, decides which of our settings count, and it opens builder connections as root.
/// `as_root` is [`crate::settings::Settings::as_root`].
pub fn is_daemon_client(as_root: bool) -> bool {
    !as_root && std::path::Path::new("/nix/var/nix/daemon-socket/socket").exists()
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
    let clean = crate::log::strip_ansi(stderr);
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

/// The line of one of nix's error messages (a log's `msg`, trace included) that says what went
/// wrong: nix puts it last, after the trace.
pub fn error_headline(error: &str) -> String {
    let line = error
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(error)
        .trim();
    line.strip_prefix("error:")
        .unwrap_or(line)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_that_ignores_a_restricted_setting_does_not_trust_us() {
        // Nix 2.8's daemon at debug level, relayed to a `--debug` client; 2.22+'s warning.
        let old = "performing daemon worker op: 1\nignoring the user-specified setting 'builders-use-substitutes', because it is a restricted setting and you are not a trusted user\n";
        let new = "warning: Ignoring the client-specified setting 'builders-use-substitutes', because it is a restricted setting and you are not a trusted user\n";
        assert!(ignored_as_untrusted(old));
        assert!(ignored_as_untrusted(new));
        assert!(!ignored_as_untrusted("Store URL: daemon\nVersion: 2.8.0\n"));
    }

    #[test]
    fn error_line_prefers_the_error() {
        let stderr = "warning: something\n\u{1b}[31;1merror:\u{1b}[0m flake 'path:/x' does not provide attribute 'nope'\n       Did you mean foo?\n";
        assert_eq!(
            last_error_line(stderr),
            "flake 'path:/x' does not provide attribute 'nope'"
        );
    }

    fn recorded(name: &str) -> String {
        let file = format!("{}/tests/data/formats/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    #[test]
    fn trust_from_every_recorded_store_info() {
        // 2.8 has no Trusted: line; 2.26 and 2.34 do (`store info`, and `store ping` with a
        // deprecation warning first on 2.34).
        assert_eq!(trusted_line(&recorded("store-ping-2.8.txt")), None);
        for file in [
            "store-info-2.26.txt",
            "store-info-2.34.txt",
            "store-ping-2.34.txt",
        ] {
            assert_eq!(trusted_line(&recorded(file)), Some(true), "{file}");
        }
        assert_eq!(trusted_line("Store URL: daemon\nTrusted: 0\n"), Some(false));
        for file in ["store-info-json-2.26.json", "store-info-json-2.34.json"] {
            let json = serde_json::from_str(&recorded(file)).unwrap();
            assert_eq!(trusted_json(&json), Some(true), "{file}");
        }
        assert_eq!(
            trusted_json(&serde_json::json!({"trusted": 0})),
            Some(false)
        );
        assert_eq!(trusted_json(&serde_json::json!({"url": "daemon"})), None);
    }

    #[test]
    fn a_port_in_a_builder_uri_needs_2_31() {
        let machine = |uri: &str| crate::machines::Machine::new(uri).unwrap();
        let nix = |v: &str| Nix::with_version(NixVersion::parse(v).unwrap());
        let with_port = machine("ssh-ng://root@127.0.0.1:2222");
        let why = nix("nix (Nix) 2.26.3")
            .cannot_use_builder(&with_port)
            .expect("2.26 cannot");
        assert!(why.contains("2.31") && why.contains("2.26.3") && why.contains("Port 2222"));
        assert!(nix("nix (Nix) 2.8.0")
            .cannot_use_builder(&with_port)
            .is_some());
        assert!(nix("nix (Lix, like Nix) 2.91.1")
            .cannot_use_builder(&with_port)
            .is_some());
        assert_eq!(nix("nix (Nix) 2.31.2").cannot_use_builder(&with_port), None);
        assert_eq!(nix("nix (Nix) 2.34.8").cannot_use_builder(&with_port), None);
        assert_eq!(
            nix("nix (Nix) 2.8.0").cannot_use_builder(&machine("ssh-ng://seasmoke")),
            None
        );
    }

    #[test]
    fn an_error_message_s_headline_is_its_last_line() {
        let traced = "error:\n       … while evaluating the attribute 'x'\n\n       error: attribute 'nope' missing\n";
        assert_eq!(error_headline(traced), "attribute 'nope' missing");
        assert_eq!(error_headline("plain words"), "plain words");
    }

    #[test]
    fn error_line_falls_back_to_the_last_line() {
        assert_eq!(last_error_line("one\ntwo\n\n"), "two");
        assert_eq!(last_error_line(""), "(no message)");
    }
}
