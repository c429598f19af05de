//! Builder probes over SSH: every builder at once, each bounded by the connect timeout.
//!
//! Each probe opens one OpenSSH control master (`ssh -M`) with exactly the options nix itself
//! would use for that builder: `NIX_SSHOPTS`, the machines line's key and host key, and nothing
//! that weakens host key checking. The [`openssh`] crate then runs commands over that master; the
//! same connection answers the store queries of the rest of the run ([`crate::sources`]).
//!
//! We start the master ourselves rather than through `openssh::SessionBuilder` because the
//! builder always passes `-o StrictHostKeyChecking=...`, which would override what the user's ssh
//! config says, and cannot pass `NIX_SSHOPTS`; `Session::resume` takes over from there.

mod identity;
pub mod through_daemon;

pub use identity::{current_user, liveness, Identity, Liveness};

use crate::machines::Machine;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::process::Command;

/// What one probe found out about one builder, in the shape of CONTRACT.md's `probe --json`.
#[derive(Debug, Clone, Serialize)]
pub struct BuilderStatus {
    /// The store URI from the machines line.
    pub uri: String,
    /// The host name alone.
    pub host: String,
    /// Whether the connection and the first command succeeded in time.
    pub reachable: bool,
    /// One command's round trip over the established connection, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// The builder's Nix version.
    pub nix_version: Option<String>,
    /// The systems it can build: its own `system` and `extra-platforms`, else the machines line's.
    pub systems: Vec<String>,
    /// Its supported features: its `system-features`, else the machines line's.
    pub features: Vec<String>,
    /// Whether its nix trusts us (`nix store ping`'s `Trusted:`, Nix 2.15+); null when unknown.
    pub trusted: Option<bool>,
    /// One human line saying why it is not reachable.
    pub error: Option<String>,
    /// Whether its sshd answered (banner) within the timeout, no credentials needed; null when
    /// it could not be told (e.g. the name resolves only through root's ssh config).
    pub alive: Option<bool>,
    /// Whether the answers came from the identity nix itself will use (see `identity`).
    pub verified: bool,
    /// Whose ssh nix uses for this builder: the user's own, or `root` for a nix-daemon.
    pub identity: String,
    /// One human line on what could not be checked, when `verified` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A probed builder: its machines entry, what the probe found, and the open connection.
pub struct ProbedBuilder {
    /// The machines-file entry it was probed from.
    pub machine: Machine,
    /// What the probe found.
    pub status: BuilderStatus,
    /// The connection, when reachable; dropped (and the master closed) at the end of the run.
    pub connection: Option<Arc<Connection>>,
}

/// One open SSH control master and a session over it. Closing the master is tied to Drop.
pub struct Connection {
    session: openssh::Session,
    master: Master,
    query_timeout: Duration,
}

/// The deadline of each store query over an established connection: several times the connect
/// timeout (a slow link stays usable), at least ten seconds (a busy builder's database).
pub fn query_timeout(connect_timeout: Duration) -> Duration {
    (connect_timeout * 5).max(Duration::from_secs(10))
}

impl Connection {
    /// How long one store query over this connection may take.
    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// The session to run remote commands over.
    pub fn session(&self) -> &openssh::Session {
        &self.session
    }

    /// The control socket (for debugging output).
    pub fn control_path(&self) -> &Path {
        &self.master.ctl
    }
}

/// The control master's socket and its private directory (ssh's log, the pinned host key);
/// Drop asks the master to exit and removes the directory.
struct Master {
    ctl: PathBuf,
    _dir: TempDir,
}

impl Drop for Master {
    fn drop(&mut self) {
        if self.ctl.exists() {
            let child = std::process::Command::new("ssh")
                .arg("-S")
                .arg(&self.ctl)
                .args(["-O", "exit", "none"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            // Bounded: a wedged master must not hold up the end of the run (it exits by
            // itself once idle, ControlPersist).
            if let Ok(mut child) = child {
                let t0 = Instant::now();
                while matches!(child.try_wait(), Ok(None)) {
                    if t0.elapsed() > Duration::from_secs(2) {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// ssh keepalives on our master: a probe every [`ALIVE_INTERVAL`] seconds, the master gives up
/// after [`ALIVE_COUNT`] unanswered ones, so a link that stops passing packets ends the master
/// (and every store query riding it) instead of leaving it open forever.
const ALIVE_INTERVAL: u32 = 5;
/// See [`ALIVE_INTERVAL`].
const ALIVE_COUNT: u32 = 3;

/// What ssh's own configuration says for one master, read once (`ssh -G` resolves it without
/// connecting): where its control socket goes under a `%C` pattern, and whether the user's
/// configuration (ssh_config, `NIX_SSHOPTS`) already sets `ServerAliveInterval`.
struct Resolved {
    control_path: Option<PathBuf>,
    keepalive_configured: bool,
}

/// Asks `ssh -G` once for [`Resolved`]; `opts` are the connection options, `-- host` last,
/// `pattern` the shared `ControlPath` pattern when there is one. Bounded by `bound`.
async fn resolve(opts: &[std::ffi::OsString], pattern: Option<&Path>, bound: Duration) -> Resolved {
    let mut cmd = Command::new("ssh");
    // ssh makes 300 s the default interval under BatchMode (ours, or the user's): asked with
    // BatchMode off (the first value given wins), it reports only an interval someone set.
    cmd.args(["-G", "-o", "BatchMode=no"]);
    if let Some(pattern) = pattern {
        cmd.arg("-o")
            .arg(format!("ControlPath={}", pattern.display()));
    }
    cmd.args(opts)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let text = match tokio::time::timeout(bound, cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => String::new(),
    };
    Resolved {
        control_path: pattern.and_then(|_| {
            text.lines()
                .find_map(|l| l.strip_prefix("controlpath "))
                .map(PathBuf::from)
        }),
        keepalive_configured: text.lines().any(|l| {
            l.strip_prefix("serveraliveinterval ")
                .is_some_and(|v| v.trim() != "0")
        }),
    }
}

/// The keepalive options for the master, unless the user's ssh configuration already sets
/// `ServerAliveInterval`: then theirs stand, as ssh would use them (a `-o` on the command line
/// would override it).
fn keepalive_options(configured: bool) -> Vec<String> {
    if configured {
        Vec::new()
    } else {
        vec![
            "-o".to_owned(),
            format!("ServerAliveInterval={ALIVE_INTERVAL}"),
            "-o".to_owned(),
            format!("ServerAliveCountMax={ALIVE_COUNT}"),
        ]
    }
}

/// Removes this run's shared socket directory ([`nix_ssh_share_opts`]) once the masters are gone
/// (a master's socket goes with it). Never removed earlier: a master of this run may be
/// starting, and a directory made again under the same name could be someone else's.
pub fn remove_shared_socket_dir() {
    if let Some(Some(dir)) = SHARED_SOCKET_DIR.get() {
        let _ = std::fs::remove_dir(dir);
    }
}

static SHARED_SOCKET_DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// The directory of this run's control sockets, named by ssh's `%C` (a hash of the local host,
/// the builder's host, port and user), so that the nix processes nixdispatch starts find the
/// master of each builder with one `ControlPath` pattern in `NIX_SSHOPTS`
/// ([`nix_ssh_share_opts`]). `None` when it cannot be made or its path is too long for a
/// socket name (about 100 bytes: the `%C` hash takes 40).
fn shared_socket_dir() -> Option<&'static Path> {
    SHARED_SOCKET_DIR
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("nixdispatch-mux-")
                .tempdir()
                .ok()?
                .keep();
            if dir.as_os_str().len() + 42 > 100
                || dir.to_str().is_none_or(|d| d.contains(char::is_whitespace))
            {
                let _ = std::fs::remove_dir(&dir);
                return None;
            }
            Some(dir)
        })
        .as_deref()
}

/// The `NIX_SSHOPTS` words that make nix's own ssh ride the masters this run opened (no new
/// handshake per derivation: the build hook opens one ssh session per build). With
/// `ControlMaster=no`, a builder without a master here is reached with a fresh connection, as
/// before. Only for nix processes that run ssh themselves: a daemon's ssh runs as root and
/// never sees the client's environment. `None` when no master uses the shared directory.
///
/// NIX-FACTS (seen here, Nix 2.8 single-user, 30 ms each way): a 6-derivation remote chain took
/// 3.9 s riding a master instead of 6.4 s with one handshake per derivation.
pub fn nix_ssh_share_opts() -> Option<String> {
    let dir = shared_socket_dir()?;
    let used = std::fs::read_dir(dir).ok()?.next().is_some();
    used.then(|| format!("-o ControlPath={}/%C -o ControlMaster=no", dir.display()))
}

/// The shell line that answers everything the probe asks in one round trip. Each answer is
/// fenced by a marker line so that a chatty login shell cannot confuse the parser.
pub(crate) const INFO_SCRIPT: &str = "echo '#nixdispatch-version'; nix-store --version; \
echo '#nixdispatch-ping'; { nix --extra-experimental-features nix-command store info 2>&1 \
|| nix --extra-experimental-features nix-command store ping 2>&1; }; \
echo '#nixdispatch-config'; { nix --extra-experimental-features nix-command config show 2>/dev/null \
|| nix --extra-experimental-features nix-command show-config 2>/dev/null; }; \
echo '#nixdispatch-end'";

/// Probes every SSH builder at once; each finishes within `timeout` (plus process start-up).
/// `daemon_client`: a nix-daemon runs our builds ([`crate::settings::Settings::daemon`]).
pub async fn probe_all(
    machines: &[Machine],
    timeout: Duration,
    ssh_opts: &[String],
    daemon_client: bool,
) -> Vec<ProbedBuilder> {
    let identity = Identity::current(daemon_client);
    let ssh_builders = machines
        .iter()
        .any(|m| matches!(m.scheme(), "ssh" | "ssh-ng"));
    let sudo = identity == Identity::Daemon && ssh_builders && identity::sudo_works().await;
    // A daemon that trusts us opens the stores we name as substituters with root's ssh: it can
    // verify builders for us (see `through_daemon`).
    let daemon_verifies = identity == Identity::Daemon
        && ssh_builders
        && !sudo
        && identity::daemon_trusts_us().await == Some(true);
    let probes = machines.iter().map(|m| {
        let identity = identity.clone();
        async move {
            match identity {
                Identity::Own(_) => probe_one(m.clone(), timeout, ssh_opts.to_vec()).await,
                Identity::Daemon => as_daemon(m, timeout, ssh_opts, sudo, daemon_verifies).await,
            }
        }
    });
    futures::future::join_all(probes).await
}

/// A daemon client's view of a builder: the daemon connects as root, so our own probe tells
/// what the builder's store holds but not whether root's ssh works. Root's ssh is tried through
/// `sudo -n` when it needs no password; otherwise the builder is at best alive, not verified,
/// and left to nix. The three looks run at once: one connect timeout bounds them all.
async fn as_daemon(
    machine: &Machine,
    timeout: Duration,
    ssh_opts: &[String],
    sudo: bool,
    daemon_verifies: bool,
) -> ProbedBuilder {
    let own = probe_one(machine.clone(), timeout, ssh_opts.to_vec());
    if !matches!(machine.scheme(), "ssh" | "ssh-ng") {
        return own.await;
    }
    let root_probe = async {
        if sudo {
            Some(identity::probe_as_root(machine, timeout).await)
        } else if daemon_verifies {
            // The daemon answers with root's ssh: whether it gets in, not the builder's details.
            let limit = timeout * 2 + Duration::from_secs(5);
            Some(
                through_daemon::held(machine, &[], limit)
                    .await
                    .map(|_| RemoteInfo::default()),
            )
        } else {
            None
        }
    };
    let live = liveness(machine, timeout, ssh_opts);
    let (mut own, root, live) = futures::join!(own, root_probe, live);
    // Our own ssh got in: whatever the banner check saw, the sshd is alive.
    let live = if own.status.reachable {
        Liveness::Alive
    } else {
        live
    };
    let s = &mut own.status;
    s.identity = Identity::Daemon.label();
    let own_error = s.error.take();
    let own_trust = s.trusted.take();
    s.alive = match &live {
        Liveness::Alive => Some(true),
        Liveness::Dead(_) => Some(false),
        Liveness::Unknown(_) => None,
    };
    match root {
        Some(Ok(info)) => {
            s.verified = true;
            s.reachable = true;
            s.alive = Some(true);
            // The daemon's answer says nothing of the builder's nix: keep what our ssh learned.
            if info.nix_version.is_some() {
                info.apply(s);
            }
        }
        Some(Err(reason)) => {
            s.verified = true;
            s.reachable = false;
            s.error = Some(format!("root's ssh (the nix-daemon's) fails: {reason}"));
            own.connection = None;
        }
        None => {
            s.verified = false;
            match live {
                Liveness::Dead(reason) => {
                    s.reachable = false;
                    s.error = Some(reason);
                }
                Liveness::Alive | Liveness::Unknown(_) => {
                    s.reachable = true;
                    // ssh's verdict alone: the fix that follows it is for the user's ssh.
                    let yours = match (&own_error, own_trust) {
                        (Some(e), _) => {
                            format!("your own ssh: {}", e.split(':').next().unwrap_or(e))
                        }
                        (None, _) => "your own ssh reaches it".to_owned(),
                    };
                    let unknown = match &live {
                        Liveness::Unknown(why) => format!("liveness not checked: {why}; "),
                        _ => String::new(),
                    };
                    s.note = Some(format!(
                        "{unknown}the nix-daemon connects as root with root's key and known_hosts, which nixdispatch cannot use ({yours}; `sudo -n` is not available)"
                    ));
                }
            }
        }
    }
    own
}

async fn probe_one(machine: Machine, timeout: Duration, ssh_opts: Vec<String>) -> ProbedBuilder {
    let mut status = BuilderStatus {
        uri: machine.uri.clone(),
        host: machine.host_label().to_owned(),
        reachable: false,
        rtt_ms: None,
        nix_version: None,
        systems: machine.systems.clone(),
        features: machine.supported_features.clone(),
        trusted: None,
        error: None,
        alive: None,
        verified: false,
        identity: current_user(),
        note: None,
    };
    if !matches!(machine.scheme(), "ssh" | "ssh-ng") {
        status.error = Some(format!(
            "{} stores are not probed: only ssh:// and ssh-ng:// builders are",
            machine.scheme()
        ));
        return ProbedBuilder {
            machine,
            status,
            connection: None,
        };
    }
    let started = Instant::now();
    let attempt =
        tokio::time::timeout(timeout, connect_and_ask(&machine, timeout, &ssh_opts)).await;
    let connection = match attempt {
        Err(_) => {
            status.error = Some(format!("timed out after {}", seconds(timeout)));
            None
        }
        Ok(Err(reason)) => {
            status.error = Some(reason);
            None
        }
        Ok(Ok((connection, info, rtt))) => {
            status.reachable = true;
            status.alive = Some(true);
            status.verified = true;
            status.rtt_ms = Some((rtt.as_secs_f64() * 1000.0 * 10.0).round() / 10.0);
            info.apply(&mut status);
            Some(Arc::new(connection))
        }
    };
    tracing::debug!(host = %status.host, elapsed = ?started.elapsed(), reachable = status.reachable, "probed");
    ProbedBuilder {
        machine,
        status,
        connection,
    }
}

pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Opens the master, runs the info script once, and measures one round trip.
async fn connect_and_ask(
    machine: &Machine,
    timeout: Duration,
    ssh_opts: &[String],
) -> Result<(Connection, RemoteInfo, Duration), String> {
    let master = start_master(machine, timeout, ssh_opts).await?;
    let session = openssh::Session::resume(master.ctl.clone().into_boxed_path(), None);
    let connection = Connection {
        session,
        master,
        query_timeout: query_timeout(timeout),
    };

    // The round trip and the questions go over the master at once: one RTT, not two.
    let echo = async {
        let t0 = Instant::now();
        let out = connection
            .session
            .raw_command("echo")
            .arg("ok")
            .output()
            .await;
        (out, t0.elapsed())
    };
    let ask = async {
        let mut command = connection.session.raw_command(INFO_SCRIPT);
        crate::sources::remote::output(&mut command, crate::sources::remote::MAX_PROBE_ANSWER).await
    };
    let ((echo, rtt), out) = futures::join!(echo, ask);
    let broke = |err: openssh::Error| format!("the connection broke: {err}");
    if !echo.map_err(broke)?.status.success() {
        return Err("the builder's shell does not run commands".to_owned());
    }
    let out = out.map_err(broke)?;
    let info = RemoteInfo::parse(&String::from_utf8_lossy(&out.stdout));
    if info.nix_version.is_none() {
        return Err(
            "nix not found on the builder (nix-store is not on its PATH for non-interactive ssh)"
                .to_owned(),
        );
    }
    Ok((connection, info, rtt))
}

/// Starts `ssh -M` for the machine and waits until it is authenticated (ssh `-f` forks then).
async fn start_master(
    machine: &Machine,
    timeout: Duration,
    ssh_opts: &[String],
) -> Result<Master, String> {
    let dir = tempfile::Builder::new()
        .prefix("nixdispatch-ssh-")
        .tempdir()
        .map_err(|err| format!("cannot create a directory for the ssh control socket: {err}"))?;
    let log = dir.path().join("log");
    // The options nix's own ssh would use for this builder; `ssh -G` resolves the socket name
    // from the same ones.
    let mut opts: Vec<std::ffi::OsString> = ssh_opts.iter().map(Into::into).collect();
    if let Some(key) = &machine.ssh_key {
        opts.push("-i".into());
        opts.push(key.into());
    }
    let host = machine.ssh_host().unwrap_or_default();
    // As nix does: the machines line's host key is the only one accepted for this host.
    // Parsing rejected undecodable keys; never fall back to the user's known_hosts here.
    if let Some(line) = machine.known_hosts_line().map_err(|err| err.to_string())? {
        let known = dir.path().join("known_hosts");
        std::fs::write(&known, format!("{line}\n"))
            .map_err(|err| format!("cannot write the builder's host key to a file: {err}"))?;
        opts.push("-o".into());
        opts.push(format!("UserKnownHostsFile={}", known.display()).into());
        opts.extend(["-o".into(), "StrictHostKeyChecking=yes".into()]);
    }
    if let Some(port) = machine.ssh_port() {
        opts.push("-p".into());
        opts.push(port.to_string().into());
    }
    if let Some(user) = machine.ssh_user() {
        opts.push("-l".into());
        opts.push(user.into());
    }
    opts.push("--".into());
    opts.push(host.into());

    // The socket goes where the nix processes of this run will look for it (see
    // `nix_ssh_share_opts`), else in the master's own directory; ssh keepalives too, unless the
    // user's ssh configuration for this host sets its own.
    let pattern = shared_socket_dir().map(|d| d.join("%C"));
    let resolved = resolve(&opts, pattern.as_deref(), timeout).await;
    let alive = keepalive_options(resolved.keepalive_configured);
    let ctl = resolved
        .control_path
        .unwrap_or_else(|| dir.path().join("master"));
    let mut cmd = Command::new("ssh");
    cmd.arg("-E")
        .arg(&log)
        .arg("-S")
        .arg(&ctl)
        .args(["-M", "-f", "-N", "-x", "-a"])
        // Idle masters go away by themselves, even if we are killed before Drop closes them.
        .args(["-o", "ControlPersist=60", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            timeout.as_secs_f64().ceil().max(1.0)
        ))
        .args(alive)
        .args(&opts);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let master = Master { ctl, _dir: dir };
    let status = cmd
        .status()
        .await
        .map_err(|err| format!("cannot run ssh: {err}"))?;
    if status.success() {
        Ok(master)
    } else {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Err(classify_ssh_error(&text))
    }
}

/// Turns ssh's log into one human reason.
pub fn classify_ssh_error(log: &str) -> String {
    let lower = log.to_lowercase();
    let first_line = log
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("@@@") && !l.starts_with("Warning: Permanently"))
        .unwrap_or("ssh failed without a message");
    if lower.contains("remote host identification has changed")
        || lower.contains("host key for") && lower.contains("has changed")
    {
        "host key mismatch: the builder's host key is not the one in known_hosts (or the machines line); if the change is expected, update it".to_owned()
    } else if lower.contains("host key verification failed") {
        "host key verification failed: the builder's host key is not known or does not match; add it to known_hosts or the machines line".to_owned()
    } else if lower.contains("connection closed") || lower.contains("connection reset") {
        "the builder closed the connection (is its sshd running?)".to_owned()
    } else if lower.contains("connection refused") {
        "connection refused".to_owned()
    } else if lower.contains("timed out") {
        "timed out".to_owned()
    } else if lower.contains("permission denied")
        || lower.contains("too many authentication failures")
    {
        "authentication failed: the builder refused our key".to_owned()
    } else if lower.contains("could not resolve hostname") {
        "unknown host: the name does not resolve".to_owned()
    } else if lower.contains("no route to host") || lower.contains("network is unreachable") {
        "no route to host".to_owned()
    } else {
        first_line.to_owned()
    }
}

/// What the info script printed, read back.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RemoteInfo {
    nix_version: Option<String>,
    trusted: Option<bool>,
    systems: Vec<String>,
    features: Vec<String>,
}

impl RemoteInfo {
    pub(crate) fn parse(out: &str) -> RemoteInfo {
        let mut info = RemoteInfo::default();
        let mut section = "";
        let mut system = None;
        let mut extra = Vec::new();
        for line in out.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("#nixdispatch-") {
                section = match name {
                    "version" => "version",
                    "ping" => "ping",
                    "config" => "config",
                    _ => "",
                };
                continue;
            }
            match section {
                "version" if info.nix_version.is_none() => {
                    info.nix_version = line
                        .rsplit(' ')
                        .next()
                        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
                        .map(str::to_owned);
                }
                "ping" => {
                    if let Some(v) = line.strip_prefix("Trusted:") {
                        info.trusted = Some(v.trim() == "1");
                    }
                }
                "config" => {
                    if let Some((k, v)) = line.split_once(" = ") {
                        let list = || v.split_whitespace().map(str::to_owned);
                        match k.trim() {
                            "system" => system = Some(v.trim().to_owned()),
                            "extra-platforms" => extra = list().collect(),
                            "system-features" => info.features = list().collect(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        info.systems = system.into_iter().chain(extra).collect();
        info
    }

    fn apply(self, status: &mut BuilderStatus) {
        status.nix_version = self.nix_version;
        status.trusted = self.trusted;
        if !self.systems.is_empty() {
            status.systems = self.systems;
        }
        if !self.features.is_empty() {
            status.features = self.features;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_info_script() {
        let out = "Welcome!\n#nixdispatch-version\nnix-store (Nix) 2.26.3\n#nixdispatch-ping\nStore URL: daemon\nVersion: 2.26.3\nTrusted: 1\n#nixdispatch-config\nsystem = x86_64-linux\nextra-platforms = i686-linux\nsystem-features = benchmark big-parallel kvm\n#nixdispatch-end\n";
        let info = RemoteInfo::parse(out);
        assert_eq!(info.nix_version.as_deref(), Some("2.26.3"));
        assert_eq!(info.trusted, Some(true));
        assert_eq!(info.systems, ["x86_64-linux", "i686-linux"]);
        assert_eq!(info.features, ["benchmark", "big-parallel", "kvm"]);
    }

    #[test]
    fn old_nix_has_no_trusted_line() {
        let out = "#nixdispatch-version\nnix-store (Nix) 2.8.0\n#nixdispatch-ping\nStore URL: local\n#nixdispatch-config\n#nixdispatch-end\n";
        let info = RemoteInfo::parse(out);
        assert_eq!(info.nix_version.as_deref(), Some("2.8.0"));
        assert_eq!(info.trusted, None);
    }

    #[test]
    fn missing_nix_has_no_version() {
        let out = "#nixdispatch-version\nsh: 1: nix-store: not found\n#nixdispatch-ping\n";
        assert_eq!(RemoteInfo::parse(out).nix_version, None);
    }

    #[test]
    fn classifies_ssh_errors() {
        assert_eq!(
            classify_ssh_error("ssh: connect to host 127.0.0.1 port 2222: Connection refused\r\n"),
            "connection refused"
        );
        assert!(
            classify_ssh_error("root@127.0.0.1: Permission denied (publickey).")
                .starts_with("authentication failed")
        );
        assert!(classify_ssh_error(
            "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        )
        .starts_with("host key mismatch"));
        assert!(classify_ssh_error("No ED25519 host key is known for seasmoke and you have requested strict checking.\r\nHost key verification failed.\r\n").starts_with("host key verification failed"));
        assert_eq!(
            classify_ssh_error("Connection timed out during banner exchange"),
            "timed out"
        );
        assert_eq!(classify_ssh_error("something odd\n"), "something odd");
    }
}
