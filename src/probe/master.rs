//! The ssh side of a probe: one OpenSSH control master per builder (`ssh -M`, with exactly the
//! options nix itself would use), the [`Connection`] over it that later store queries ride, and
//! the shared socket directory that lets nix's own ssh ride the same masters.
//!
//! We start the master ourselves rather than through `openssh::SessionBuilder` because the
//! builder always passes `-o StrictHostKeyChecking=...`, which would override what the user's ssh
//! config says, and cannot pass `NIX_SSHOPTS`; `Session::resume` takes over from there.

use super::info::{RemoteInfo, INFO_SCRIPT};
use super::{classify_ssh_error, ssh_address, ProbeFailure};
use crate::machines::Machine;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::process::Command;

/// One open SSH control master and a session over it. Closing the master is tied to Drop.
pub struct Connection {
    session: openssh::Session,
    master: Master,
    query_timeout: Duration,
}

/// The deadline of each store query over an established connection
/// ([`Deadlines::query`](crate::deadlines::Deadlines)).
pub fn query_timeout(connect_timeout: Duration) -> Duration {
    crate::deadlines::Deadlines::new(connect_timeout).query
}

/// Shown by its control socket: what tells two connections apart.
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("control_path", &self.master.ctl)
            .finish_non_exhaustive()
    }
}

/// The same connection (one master), not two alike.
impl PartialEq for Connection {
    fn eq(&self, other: &Connection) -> bool {
        std::ptr::eq(self, other)
    }
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

/// Opens the master, runs the info script once, and measures one round trip.
pub(super) async fn connect_and_ask(
    machine: &Machine,
    timeout: Duration,
    ssh_opts: &[String],
) -> Result<(Connection, RemoteInfo, Duration), ProbeFailure> {
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
    let broke = |err: openssh::Error| ProbeFailure::ConnectionBroke(err.to_string());
    if !echo.map_err(broke)?.status.success() {
        return Err(ProbeFailure::ShellBroken);
    }
    let out = out.map_err(broke)?;
    let info = RemoteInfo::parse(&String::from_utf8_lossy(&out.stdout));
    if info.nix_version.is_none() {
        return Err(ProbeFailure::NixMissing);
    }
    Ok((connection, info, rtt))
}

/// The ssh options that make `line` (a known_hosts line, see [`Machine::known_hosts_line`])
/// the only host key ssh accepts, written to a file in `dir`.
pub(super) fn pin_host_key(line: &str, dir: &Path) -> Result<Vec<String>, String> {
    let known = dir.join("known_hosts");
    std::fs::write(&known, format!("{line}\n"))
        .map_err(|err| format!("cannot write the builder's host key to a file: {err}"))?;
    Ok(vec![
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known.display()),
        "-o".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
    ])
}

/// Starts `ssh -M` for the machine and waits until it is authenticated (ssh `-f` forks then).
async fn start_master(
    machine: &Machine,
    timeout: Duration,
    ssh_opts: &[String],
) -> Result<Master, ProbeFailure> {
    let local = |why: String| ProbeFailure::Local(why);
    let dir = tempfile::Builder::new()
        .prefix("nixdispatch-ssh-")
        .tempdir()
        .map_err(|err| {
            local(format!(
                "cannot create a directory for the ssh control socket: {err}"
            ))
        })?;
    let log = dir.path().join("log");
    // The options nix's own ssh would use for this builder; `ssh -G` resolves the socket name
    // from the same ones.
    let mut opts: Vec<std::ffi::OsString> = ssh_opts.iter().map(Into::into).collect();
    if let Some(key) = &machine.ssh_key {
        opts.push("-i".into());
        opts.push(key.into());
    }
    let ssh = ssh_address(machine)?;
    // As nix does: the machines line's host key is the only one accepted for this host.
    // Parsing rejected undecodable keys; never fall back to the user's known_hosts here.
    if let Some(line) = machine
        .known_hosts_line()
        .map_err(|err| local(err.to_string()))?
    {
        opts.extend(
            pin_host_key(&line, dir.path())
                .map_err(local)?
                .into_iter()
                .map(Into::into),
        );
    }
    opts.extend(ssh.destination_args().into_iter().map(Into::into));

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
        .map_err(|err| local(format!("cannot run ssh: {err}")))?;
    if status.success() {
        Ok(master)
    } else {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Err(classify_ssh_error(&text))
    }
}
