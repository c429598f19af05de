//! seasmoke, the builder: its sshd (and the impostor twin with another host key) in a pid and
//! mount namespace chrooted into the builder's root, its store and settings, its machines line.

use crate::files::{base64, empty_dir};
use crate::lab::{lock, Lab};
use crate::scripts::CHROOT_SCRIPT;
use crate::sys::{self, lines, quiet_success};
use crate::{failed, Result, LAB_MARKER_VAR, PATH};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The only system the lab's hosts build for.
const SYSTEM: &str = "x86_64-linux";

pub(crate) struct Seasmoke {
    child: Child,
    pidns: Option<String>,
    /// The write end of the namespace init's stdin: never written, closed when this process
    /// dies, which ends the namespace even if Drop never ran (SIGKILL, abort, leaked Lab).
    _lifeline: Option<std::process::ChildStdin>,
}

pub(crate) struct Ports {
    pub(crate) sshd: u16,
    pub(crate) impostor: u16,
}

impl Lab {
    /// The machines line for seasmoke: `ssh-ng://seasmoke x86_64-linux - 2 1 - - -`.
    pub fn builder_spec(&self) -> String {
        format!(
            "ssh-ng://seasmoke {SYSTEM} - {} 1 - - -",
            self.opts.builder_max_jobs
        )
    }

    /// Like [`Lab::builder_spec`] with the last field set: base64 of seasmoke's public host key.
    pub fn builder_spec_with_host_key(&self) -> String {
        format!(
            "ssh-ng://seasmoke {SYSTEM} - {} 1 - - {}",
            self.opts.builder_max_jobs,
            base64(self.host_key_pub.as_bytes())
        )
    }

    /// seasmoke's public host key line (`ssh-ed25519 AAAA...`).
    pub fn builder_host_key(&self) -> &str {
        &self.host_key_pub
    }

    /// seasmoke's signing key (`seasmoke-lab-1:...`); used only with `builder_signs`.
    pub fn builder_public_key(&self) -> &str {
        &self.builder_public_key
    }

    /// seasmoke's sshd log (both sshd instances, `-e`).
    pub fn builder_log(&self) -> String {
        fs::read_to_string(self.dir.join("seasmoke/sshd.log")).unwrap_or_default()
    }

    /// The physical directory of seasmoke's `/nix`.
    pub fn builder_nix_dir(&self) -> PathBuf {
        self.dir.join("seasmoke/nix")
    }

    /// Empties seasmoke's store (seasmoke is killed and started again around it).
    pub fn reset_builder(&self) -> Result<()> {
        self.kill_builder();
        empty_dir(&self.builder_nix_dir())?;
        self.start_seasmoke()
    }

    /// `program` run against seasmoke's store directly (chroot, not over ssh), with seasmoke's
    /// nix settings. Works while seasmoke is killed too.
    pub fn builder_command(&self, program: &str) -> Command {
        let mut c = Command::new(self.dir.join("bin/seasmoke"));
        c.arg(program).env_clear().envs(self.builder_env());
        c
    }

    /// Is `path` valid in seasmoke's store?
    pub fn builder_has(&self, path: &str) -> bool {
        let mut c = self.builder_command("nix-store");
        c.args(["--check-validity", path]);
        quiet_success(c)
    }

    /// Builds `installable` on seasmoke, in its own store (not over ssh); returns the output
    /// paths. Signed when the lab has `builder_signs`.
    pub fn build_on_builder(&self, installable: &str) -> Result<Vec<String>> {
        let mut c = self.builder_command("nix");
        c.args(["build", "--no-link", "--print-out-paths", installable]);
        let out = sys::run(c, &format!("building {installable} on seasmoke")).map_err(failed)?;
        Ok(lines(&out))
    }

    /// Kills seasmoke's whole pid namespace (sshd, sessions, nix-daemons, builds) at once;
    /// live connections drop. New connections are accepted by the proxy and closed at once
    /// until [`Lab::restart_builder`]. The store stays.
    pub fn kill_builder(&self) {
        let mut s = lock(&self.seasmoke);
        if let Some(s) = s.take() {
            stop_seasmoke(s);
        }
    }

    /// The command lines of every process in seasmoke's pid namespace but its init and sshds
    /// (sessions, nix, builds), for tests that check what a run left running there.
    pub fn builder_processes(&self) -> Vec<String> {
        let ns = lock(&self.seasmoke).as_ref().and_then(|s| s.pidns.clone());
        let Some(ns) = ns else { return Vec::new() };
        sys::pids_in_namespace(&ns)
            .into_iter()
            .filter_map(|p| fs::read(format!("/proc/{p}/cmdline")).ok())
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_owned()
            })
            .filter(|c| {
                !c.is_empty()
                    && !c.contains("sshd")
                    && !c.starts_with("/bin/sh -c /usr/sbin/sshd")
                    && !c.starts_with("read")
            })
            .collect()
    }

    /// Is seasmoke's sshd running (not killed)?
    pub fn builder_running(&self) -> bool {
        lock(&self.seasmoke).is_some()
    }

    /// Starts seasmoke again after [`Lab::kill_builder`] (same keys, same store).
    pub fn restart_builder(&self) -> Result<()> {
        self.kill_builder();
        self.start_seasmoke()
    }

    pub(crate) fn builder_env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            (LAB_MARKER_VAR.into(), d.to_string()),
            ("PATH".into(), PATH.into()),
            ("HOME".into(), format!("{d}/seasmoke/home")),
            ("USER".into(), "root".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NIX_CONF_DIR".into(), format!("{d}/seasmoke/etc-nix")),
        ]
    }

    pub(crate) fn start_seasmoke(&self) -> Result<()> {
        let mut slot = lock(&self.seasmoke);
        let mut last_err = String::new();
        for attempt in 0..4 {
            if attempt > 0 {
                let p = pick_ports()?;
                self.proxy.set_upstream(p.sshd, p.impostor);
                *lock(&self.ports) = p;
            }
            self.write_sshd_configs()?;
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("seasmoke/sshd.log"))?;
            let log_start = log.metadata()?.len() as usize;
            let d = self.dir.display().to_string();
            let mut c = Command::new("unshare");
            c.args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--uts",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-ec",
                CHROOT_SCRIPT,
                "sh",
            ])
            .arg(self.opts.builder_nix.root())
            .arg(self.builder_nix_dir())
            .arg(&self.dir)
            .arg("seasmoke")
            .args([
                "/bin/sh",
                "-c",
                // pid 1 of the namespace; it ends (and with it the namespace) when stdin reaches
                // EOF: when the Lab's process dies without Drop running. With a daemon, its
                // builds' ssh reads the lab's ssh config (NIX_SSHOPTS).
                "[ \"$2\" = - ] || NIX_SSHOPTS=\"-F $3/ssh_config\" /usr/bin/nix-daemon & \
                 /usr/sbin/sshd -D -e -f \"$0\" & /usr/sbin/sshd -D -e -f \"$1\" & read -r _",
            ])
            .arg(format!("{d}/seasmoke/sshd_config"))
            .arg(format!("{d}/seasmoke/sshd_impostor_config"))
            .arg(if self.opts.builder_daemon_trusted_users.is_some() {
                "daemon"
            } else {
                "-"
            })
            .arg(&d)
            .env_clear()
            .envs(self.builder_env())
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
            let mut child = c.spawn().map_err(|e| failed(format!("unshare: {e}")))?;
            let lifeline = child.stdin.take();
            let pid = child.id() as i32;
            // The namespace's init is unshare's only child.
            let t0 = Instant::now();
            let mut pidns = None;
            while pidns.is_none() && t0.elapsed() < Duration::from_secs(5) {
                pidns = sys::children_of(pid)
                    .first()
                    .and_then(|&c| sys::pid_namespace(c));
                if pidns.is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let s = Seasmoke {
                child,
                pidns,
                _lifeline: lifeline,
            };
            let (sshd, impostor) = {
                let p = lock(&self.ports);
                (p.sshd, p.impostor)
            };
            // An SSH banner on the port is not enough: if another lab grabbed the port between
            // pick_ports and sshd's bind, the banner is theirs. Our sshd logs its listening.
            let ours = |port: u16| {
                let line = format!("Server listening on 127.0.0.1 port {port}.");
                self.builder_log()
                    .get(log_start..)
                    .is_some_and(|l| l.contains(&line))
            };
            if sys::wait_for_ssh_banner(sshd, Duration::from_secs(10))
                && sys::wait_for_ssh_banner(impostor, Duration::from_secs(5))
                && ours(sshd)
                && ours(impostor)
            {
                *slot = Some(s);
                return Ok(());
            }
            stop_seasmoke(s);
            last_err = self.builder_log();
        }
        Err(failed(format!(
            "seasmoke's sshd did not come up; its log:\n{last_err}"
        )))
    }

    pub(crate) fn write_sshd_configs(&self) -> Result<()> {
        let d = self.dir.display();
        let ports = lock(&self.ports);
        let daemon = if self.opts.builder_daemon_trusted_users.is_some() {
            " NIX_REMOTE=daemon"
        } else {
            ""
        };
        let env = format!(
            "SetEnv {LAB_MARKER_VAR}={d} NIX_CONF_DIR={d}/seasmoke/etc-nix HOME={d}/seasmoke/home{daemon}"
        );
        for (file, port, key) in [
            ("sshd_config", ports.sshd, "host_key"),
            ("sshd_impostor_config", ports.impostor, "impostor_host_key"),
        ] {
            let conf = format!(
                "# seasmoke's sshd (generated by nixdispatch-lab)\n\
                 ListenAddress 127.0.0.1:{port}\n\
                 HostKey {d}/seasmoke/{key}\n\
                 AuthorizedKeysFile {d}/seasmoke/authorized_keys\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile none\n\
                 PrintMotd no\n\
                 MaxStartups 100:30:200\n\
                 MaxSessions 100\n\
                 {env}\n"
            );
            fs::write(self.dir.join("seasmoke").join(file), conf)?;
        }
        Ok(())
    }
}

pub(crate) fn stop_seasmoke(mut s: Seasmoke) {
    // --kill-child: the namespace's init gets SIGKILL when unshare dies, and with it every
    // process of the namespace.
    let _ = s.child.kill();
    let _ = s.child.wait();
    if let Some(ns) = s.pidns {
        sys::kill_until_gone(|| sys::pids_in_namespace(&ns), Duration::from_secs(10));
    }
}

pub(crate) fn pick_ports() -> Result<Ports> {
    // Hold both listeners while picking, so the two ports differ.
    let a = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let b = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(Ports {
        sshd: a.local_addr()?.port(),
        impostor: b.local_addr()?.port(),
    })
}
