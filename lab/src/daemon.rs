//! vermax as most people run it: a multi-user nix-daemon (root) and a non-root user, `alice`.
//!
//! [`Lab::start_daemon`] starts a real `nix-daemon` as root in its own pid and mount namespace,
//! chrooted into a Debian root (the trixie root, Nix 2.26, by default; any root with `nix-daemon`,
//! `sshd` and `sudo` works: [`DaemonOptions::root`], e.g. the sid root of Nix 2.34). Its socket is
//! `/nix/var/nix/daemon-socket/socket` in the variant's own `/nix` (`LABDIR/daemon/nix`). Each
//! [`DaemonClient::command`] runs in a fresh namespace + chroot of the same root with the same
//! `/nix` bound, as `alice` (uid 1000) with `NIX_REMOTE=daemon`: a Unix socket is an inode, so it
//! connects from any mount namespace that sees the same directory.
//!
//! What is laid out as NixOS lays it out:
//! - `/etc/nix/nix.conf` (read by the daemon and by alice's nix alike): `trusted-users`,
//!   `builders = @/etc/nix/machines`; `/etc/nix/machines` has
//!   `ssh-ng://root@seasmoke x86_64-linux /root/.ssh/id_ed25519_nix_build 2 1 - - -`.
//! - `/root/.ssh` (mode 700): the key (mode 600, root's), root's `known_hosts`. Only root can read
//!   them. The daemon's ssh reads them from root's passwd home.
//! - `/etc/ssh/ssh_config` (world-readable, like NixOS's `programs.ssh.extraConfig`): where
//!   `seasmoke` is (`HostName 127.0.0.1`, the proxy's `Port`, `HostKeyAlias seasmoke`). No keys.
//! - `/home/alice`: alice's own `~/.ssh` only with [`DaemonOptions::user_ssh`] (a copy of the key,
//!   her own `known_hosts`).
//! - sudo (installed in the root by `scripts/lab-deps`): [`Sudo`] decides the sudoers line, with a
//!   short `timestamp_timeout` ([`DaemonOptions::sudo_timeout_minutes`]).
//!
//! Seen here with this variant (Nix 2.26 daemon, 2026-11-29):
//! - The daemon's ssh writes its own words ("Host key verification failed.") to the daemon's
//!   stderr (this variant's `nix-daemon.log`; the journal on NixOS), never to the client. The
//!   client sees only "cannot build on 'ssh-ng://root@seasmoke': error: failed to start SSH
//!   connection to 'root@seasmoke'" (after an empty "SSH stdout first line:"), and with
//!   `--max-jobs 0` then "Unable to start any build; remote machines may not have all required
//!   system features", which points the wrong way.
//! - Plain nix with the default `max-jobs` builds locally after that failure (exit 0).
//! - `nix store ping` (a deprecated alias in 2.26) prints `Trusted: 0|1` on stderr.
//! - An untrusted alice's `--option builders ...` is ignored; `--max-jobs 0` is honoured.
//! - nh 4.4 as alice runs `sudo` for `switch-to-configuration test`/`boot`; from a background
//!   process group its prompt is shown but never read (the typed password echoes): the child
//!   must hold the terminal's foreground.
//! - The sid root (Nix 2.34) works as [`DaemonOptions::root`] too (no sudo installed there).
//!
//! Learned here: the trixie root has no `/etc/hosts` (so none is bound, the shared root stays as
//! it is) and sudo warns "unable to resolve host vermax", harmlessly; the chroot's `/run` is a fresh tmpfs per command, so sudo's timestamps
//! (`/run/sudo/ts`) live as long as one command; `setpriv` (not `runuser`) drops to alice because
//! it execs: the pid a test spawns is the program itself, so signals reach it; the lab directory
//! is made world-readable (mode 755; its secrets stay mode 600) so alice can read the flake.

use crate::scripts::{chroot_exec, chroot_mounts};
use crate::{failed, sys, Lab, LabError, LAB_MARKER_VAR, PATH};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The non-root user of the daemon variant.
pub const USER: &str = "alice";
/// alice's uid and gid.
pub const UID: u32 = 1000;
/// alice's password, for sudo with [`Sudo::Password`].
pub const PASSWORD: &str = "alice-lab-password";
/// SHA-512 crypt of [`PASSWORD`] (python3 `crypt.crypt`).
const PASSWORD_HASH: &str = "$6$PKF7MpSLEWkiXrTg$P6hfS0NEk8VHU0cTyn85qLczUobj6C/rYjacv/zdHr75KDy9g8TEglE.IjoibfNDI57vu5yUv13tpccbOWay0.";
/// Where root's builder key is, as NixOS's `nix.buildMachines.*.sshKey` usually says.
pub const ROOT_KEY: &str = "/root/.ssh/id_ed25519_nix_build";

/// What sudo lets alice do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sudo {
    /// alice is not in sudoers.
    None,
    /// `alice ALL=(ALL) NOPASSWD: ALL`.
    NoPassword,
    /// `alice ALL=(ALL) ALL`: sudo asks for [`PASSWORD`] on a terminal.
    Password,
}

/// How to set up the daemon variant.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// alice is in the daemon's `trusted-users`.
    pub trusted: bool,
    /// alice has her own working ssh to seasmoke (a key and `known_hosts` in `~/.ssh`).
    pub user_ssh: bool,
    /// root's `known_hosts` has seasmoke's host key (otherwise the daemon's builds fail with
    /// "Host key verification failed").
    pub root_known_host: bool,
    /// What sudo lets alice do.
    pub sudo: Sudo,
    /// sudoers `timestamp_timeout`, in minutes (may be fractional).
    pub sudo_timeout_minutes: f64,
    /// The Debian root to run in (default: the lab's trixie root, Nix 2.26).
    pub root: Option<PathBuf>,
    /// Lines appended to `/etc/nix/nix.conf` (read by the daemon and alice).
    pub extra_nix_config: String,
    /// Run this machine's own Nix 2.8 (Debian 12) as the daemon and alice's nix instead of a
    /// chroot root: a daemon that does not say whether it trusts its client (2.15 added that).
    /// The root is then this machine's `/usr` and `/var` (bound read-only in spirit: nothing is
    /// written there) and an overlay of its `/etc` whose changes stay in the lab.
    pub this_machine_nix: bool,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            trusted: true,
            user_ssh: false,
            root_known_host: true,
            sudo: Sudo::None,
            sudo_timeout_minutes: 5.0,
            root: None,
            extra_nix_config: String::new(),
            this_machine_nix: false,
        }
    }
}

/// The namespace + chroot preamble of the daemon variant. Arguments: ROOT NIXDIR LABDIR DAEMONDIR
/// HOSTNAME MACHINE COMMAND...; MACHINE is `-`, or `machine` to build ROOT from this machine's
/// own `/usr`, `/var` and an overlay of its `/etc` (whose upper layer is `DAEMONDIR/etc-upper`:
/// the machine's `/etc` is never written).
const DAEMON_CHROOT: &str = concat!(
    "set -e\nT=$1 N=$2 L=$3 D=$4 H=$5 M=$6; shift 6\n",
    r#"if [ "$M" = machine ]; then
mount --rbind /usr "$T/usr"
mount --rbind /var "$T/var"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$D/etc-upper,workdir=$D/etc-work" "$T/etc"
mkdir -p "$T/etc/nix" "$T/etc/ssh"
touch "$T/etc/ssh/ssh_config"
fi
"#,
    chroot_mounts!(),
    r#"for f in passwd group shadow sudoers; do [ ! -e "$T/etc/$f" ] || mount --bind "$D/etc/$f" "$T/etc/$f"; done
mount --bind "$D/etc/nix" "$T/etc/nix"
mount --bind "$D/etc/ssh_config" "$T/etc/ssh/ssh_config"
mount --bind "$D/root" "$T/root"
mount --bind "$D/home" "$T/home"
"#,
    chroot_exec!()
);

/// A running nix-daemon on vermax and the way to run commands as alice. Dropping it stops the
/// daemon (the [`Lab`]'s Drop would too: every process carries the lab marker).
pub struct DaemonClient<'a> {
    lab: &'a Lab,
    opts: DaemonOptions,
    root: PathBuf,
    daemon: Option<Child>,
    _lifeline: Option<std::process::ChildStdin>,
}

impl Lab {
    /// Starts vermax's nix-daemon variant (see the module docs). About half a second.
    pub fn start_daemon(&self, opts: DaemonOptions) -> Result<DaemonClient<'_>, LabError> {
        let root = if opts.this_machine_nix {
            self.machine_root()?
        } else {
            opts.root.clone().unwrap_or_else(|| self.trixie.clone())
        };
        // Where the root's files really are (this machine's for `this_machine_nix`).
        let users_from = if opts.this_machine_nix {
            PathBuf::from("/")
        } else {
            root.clone()
        };
        for need in ["usr/bin/nix-daemon", "usr/bin/setpriv"] {
            if !users_from.join(need).exists() {
                return Err(LabError::Missing(
                    users_from.join(need).display().to_string(),
                ));
            }
        }
        if opts.sudo != Sudo::None && !users_from.join("usr/bin/sudo").exists() {
            return Err(LabError::Missing(
                users_from.join("usr/bin/sudo").display().to_string(),
            ));
        }
        let d = self.dir.join("daemon");
        for sub in ["nix", "etc/nix", "root/.ssh", "home/alice/.ssh"] {
            fs::create_dir_all(d.join(sub))?;
        }
        // alice reads the flake and the nixdispatch binary in the lab directory; its secrets
        // (keys) stay mode 600. Activation markers are written by her.
        let chmod = |p: &Path, mode: u32| fs::set_permissions(p, fs::Permissions::from_mode(mode));
        chmod(&self.dir, 0o755)?;
        chmod(&self.markers_dir(), 0o1777)?;
        chmod(&d.join("root"), 0o700)?;
        chmod(&d.join("root/.ssh"), 0o700)?;

        // Users, as the root has them plus alice.
        let etc =
            |name: &str| fs::read_to_string(users_from.join("etc").join(name)).unwrap_or_default();
        // alice's uid and gid are hers alone: this machine's own uid 1000 (a cloud image's first
        // user) would otherwise be who the daemon sees, and it trusts no such user.
        let not_uid = |text: String| -> String {
            let id = UID.to_string();
            text.lines()
                .filter(|l| l.split(':').nth(2) != Some(id.as_str()))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        let mut passwd = not_uid(etc("passwd"));
        passwd += &format!("{USER}:x:{UID}:{UID}:Alice:/home/{USER}:/bin/bash\n");
        // With sudo, alice is in group sudo (as a NixOS user is in wheel).
        let mut group: String = not_uid(etc("group"))
            .lines()
            .map(|l| match l.strip_prefix("sudo:x:27:") {
                Some(members) if opts.sudo != Sudo::None && members.is_empty() => {
                    format!("sudo:x:27:{USER}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        group += &format!("{USER}:x:{UID}:\n");
        let mut shadow = etc("shadow");
        shadow += &format!("{USER}:{PASSWORD_HASH}:20000:0:99999:7:::\n");
        sys::write_mode(&d.join("etc/passwd"), &passwd, 0o644)?;
        sys::write_mode(&d.join("etc/group"), &group, 0o644)?;
        sys::write_mode(&d.join("etc/shadow"), &shadow, 0o640)?;
        let rule = match opts.sudo {
            Sudo::None => String::new(),
            Sudo::NoPassword => format!("{USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"),
            Sudo::Password => format!("{USER} ALL=(ALL:ALL) ALL\n"),
        };
        sys::write_mode(
            &d.join("etc/sudoers"),
            &format!(
                "Defaults env_reset\nDefaults secure_path=\"{PATH}\"\n\
                 Defaults timestamp_timeout={}\nDefaults !lecture\n\
                 root ALL=(ALL:ALL) ALL\n{rule}",
                opts.sudo_timeout_minutes
            ),
            0o440,
        )?;

        // Where seasmoke is, for everyone; keys and known_hosts are per user.
        fs::write(
            d.join("etc/ssh_config"),
            format!(
                "# vermax's /etc/ssh/ssh_config (nixdispatch-lab, daemon variant)\n\
                 Host seasmoke\n\
                 \x20 HostName 127.0.0.1\n\
                 \x20 Port {}\n\
                 \x20 HostKeyAlias seasmoke\n\
                 \x20 UpdateHostKeys no\n\
                 \x20 GlobalKnownHostsFile /dev/null\n",
                self.proxy.port()
            ),
        )?;
        let key = fs::read_to_string(self.dir.join("client_key"))?;
        let known = format!("seasmoke {}\n", self.host_key_pub);
        sys::write_mode(&d.join("root/.ssh/id_ed25519_nix_build"), &key, 0o600)?;
        sys::write_mode(
            &d.join("root/.ssh/known_hosts"),
            if opts.root_known_host { &known } else { "" },
            0o600,
        )?;
        let alice_ssh = d.join("home/alice/.ssh");
        for f in ["id_ed25519", "known_hosts"] {
            let _ = fs::remove_file(alice_ssh.join(f));
        }
        if opts.user_ssh {
            sys::write_mode(&alice_ssh.join("id_ed25519"), &key, 0o600)?;
            sys::write_mode(&alice_ssh.join("known_hosts"), &known, 0o644)?;
        }
        chown_tree(&d.join("home/alice"), UID)?;

        // nix.conf, read by the daemon and by alice's nix.
        let lab_dir = self.dir.display();
        let mut conf = format!(
            "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\n\
             substituters =\ntrusted-public-keys = {}\nflake-registry = {lab_dir}/registry.json\n\
             builders = @/etc/nix/machines\nconnect-timeout = 5\ntrusted-users = root{}\n",
            self.cache_public_key,
            if opts.trusted { " alice" } else { "" },
        );
        conf += &opts.extra_nix_config;
        if !conf.ends_with('\n') {
            conf.push('\n');
        }
        fs::write(d.join("etc/nix/nix.conf"), conf)?;
        fs::write(d.join("etc/nix/machines"), format!("{}\n", machines_line()))?;

        let mut client = DaemonClient {
            lab: self,
            opts,
            root,
            daemon: None,
            _lifeline: None,
        };
        client.start()?;
        Ok(client)
    }
}

impl Lab {
    /// The mount points of [`DaemonOptions::this_machine_nix`]'s root (`LABDIR/daemon/machine`):
    /// empty directories, merged-/usr links, the overlay's layers beside it.
    fn machine_root(&self) -> Result<PathBuf, LabError> {
        let d = self.dir.join("daemon");
        let root = d.join("machine");
        for sub in [
            "usr", "var", "etc", "nix", "proc", "dev", "tmp", "run", "root", "home",
        ] {
            fs::create_dir_all(root.join(sub))?;
        }
        for sub in ["etc-upper", "etc-work"] {
            fs::create_dir_all(d.join(sub))?;
        }
        for link in ["bin", "sbin", "lib", "lib64"] {
            let at = root.join(link);
            if at.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(format!("usr/{link}"), &at)?;
            }
        }
        Ok(root)
    }
}

/// The machines line NixOS writes for seasmoke with root's key.
pub fn machines_line() -> String {
    format!("ssh-ng://root@seasmoke x86_64-linux {ROOT_KEY} 2 1 - - -")
}

fn chown_tree(p: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid))?;
    if p.is_dir() && !p.is_symlink() {
        for e in fs::read_dir(p)? {
            chown_tree(&e?.path(), uid)?;
        }
    }
    Ok(())
}

impl DaemonClient<'_> {
    /// The options it was started with.
    pub fn options(&self) -> &DaemonOptions {
        &self.opts
    }

    fn dir(&self) -> PathBuf {
        self.lab.dir.join("daemon")
    }

    /// The physical directory of this vermax's `/nix`.
    pub fn nix_dir(&self) -> PathBuf {
        self.dir().join("nix")
    }

    /// `/etc/nix` of this vermax (physical path): `nix.conf` and `machines`.
    pub fn etc_nix(&self) -> PathBuf {
        self.dir().join("etc/nix")
    }

    /// `/root` of this vermax (physical path).
    pub fn root_home(&self) -> PathBuf {
        self.dir().join("root")
    }

    /// alice's home (physical path; `/home/alice` inside).
    pub fn user_home(&self) -> PathBuf {
        self.dir().join("home/alice")
    }

    fn argv_prefix(&self) -> Vec<String> {
        vec![
            "unshare".into(),
            "--mount".into(),
            "--uts".into(),
            "--propagation".into(),
            "private".into(),
            "--".into(),
            "/bin/sh".into(),
            "-ec".into(),
            DAEMON_CHROOT.into(),
            "sh".into(),
            self.root.display().to_string(),
            self.nix_dir().display().to_string(),
            self.lab.dir.display().to_string(),
            self.dir().display().to_string(),
            "vermax".into(),
            if self.opts.this_machine_nix {
                "machine".into()
            } else {
                "-".into()
            },
        ]
    }

    fn start(&mut self) -> Result<(), LabError> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("nix-daemon.log"))?;
        let mut argv = self.argv_prefix();
        argv.splice(
            1..1,
            ["--pid".into(), "--fork".into(), "--kill-child".into()],
        );
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .args([
                "/bin/sh",
                "-c",
                "rm -f /nix/var/nix/daemon-socket/socket; /usr/bin/nix-daemon & read -r _",
            ])
            .env_clear()
            .envs(self.root_env())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = c.spawn().map_err(|e| failed(format!("nix-daemon: {e}")))?;
        self._lifeline = child.stdin.take();
        self.daemon = Some(child);
        self.write_script()?;
        let socket = self.nix_dir().join("var/nix/daemon-socket/socket");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(failed(format!(
            "vermax's nix-daemon did not come up; its log:\n{}",
            self.daemon_log()
        )))
    }

    /// `LABDIR/bin/vermax-daemon [COMMAND...]`: a shell (or a command) as alice on this vermax,
    /// for people trying things by hand.
    fn write_script(&self) -> Result<(), LabError> {
        let q = |s: &str| sys::sh_quote(s);
        let exports: String = self
            .user_env()
            .iter()
            .map(|(k, v)| format!("export {k}={}\n", q(v)))
            .collect();
        let argv: Vec<String> = self.argv_prefix().iter().map(|a| q(a)).collect();
        let text = format!(
            "#!/bin/sh\n# alice on vermax, through its nix-daemon (nixdispatch-lab daemon variant)\n\
             set -e\n{exports}[ \"$#\" -gt 0 ] || set -- /bin/bash\ncd {home}\n\
             exec {argv} /usr/bin/setpriv --reuid {USER} --regid {USER} --init-groups -- \"$@\"\n",
            home = q(&self.user_home().display().to_string()),
            argv = argv.join(" "),
        );
        sys::write_mode(&self.lab.dir.join("bin/vermax-daemon"), &text, 0o755)?;
        Ok(())
    }

    /// Stops the daemon and starts it again (after changing `/etc/nix/nix.conf`, say).
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.stop();
        self.start()
    }

    fn stop(&mut self) {
        self._lifeline = None;
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The namespace's init and the daemon go with unshare (--kill-child); wait for them.
        let socket = self.nix_dir().join("var/nix/daemon-socket/socket");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5)
            && std::os::unix::net::UnixStream::connect(&socket).is_ok()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's stdout and stderr.
    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir().join("nix-daemon.log")).unwrap_or_default()
    }

    fn root_env(&self) -> Vec<(String, String)> {
        vec![
            (LAB_MARKER_VAR.into(), self.lab.dir.display().to_string()),
            ("PATH".into(), PATH.into()),
            ("HOME".into(), "/root".into()),
            ("USER".into(), "root".into()),
            ("LOGNAME".into(), "root".into()),
            ("LANG".into(), "C.UTF-8".into()),
        ]
    }

    /// alice's environment: her home, `NIX_REMOTE=daemon`, the lab's `bin/` first on PATH. No
    /// `NIX_SSHOPTS`, no `NIX_CONFIG`: her nix reads `/etc/nix/nix.conf`, as on NixOS.
    pub fn user_env(&self) -> Vec<(String, String)> {
        vec![
            (LAB_MARKER_VAR.into(), self.lab.dir.display().to_string()),
            (
                "PATH".into(),
                format!("{}/bin:{PATH}", self.lab.dir.display()),
            ),
            ("HOME".into(), format!("/home/{USER}")),
            ("USER".into(), USER.into()),
            ("LOGNAME".into(), USER.into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NIX_REMOTE".into(), "daemon".into()),
        ]
    }

    /// `program` run as alice on vermax (fresh namespace + chroot, `setpriv` to uid 1000), with
    /// exactly [`DaemonClient::user_env`]. Working directory: her home.
    pub fn command(&self, program: &str) -> Command {
        let argv = self.argv_prefix();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .args([
                "/usr/bin/setpriv",
                "--reuid",
                USER,
                "--regid",
                USER,
                "--init-groups",
                "--",
            ])
            .arg(program)
            .env_clear()
            .envs(self.user_env())
            .current_dir(self.user_home());
        c
    }

    /// `program` run as root on vermax (same chroot, root's environment, no daemon needed).
    pub fn root_command(&self, program: &str) -> Command {
        let argv = self.argv_prefix();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .arg(program)
            .env_clear()
            .envs(self.root_env())
            .env("NIX_REMOTE", "daemon")
            .current_dir(self.lab.dir.join("home"));
        c
    }

    /// The nixdispatch binary at `bin` run as alice. When it cannot be copied into the lab, the
    /// command returned fails when run (exit 127, the reason on its stderr);
    /// [`DaemonClient::try_nixdispatch`] returns that error instead.
    pub fn nixdispatch(&self, bin: &Path) -> Command {
        self.try_nixdispatch(bin)
            .unwrap_or_else(|e| sys::failing_command(&e.to_string()))
    }

    /// [`DaemonClient::nixdispatch`], with a failed copy as an error.
    pub fn try_nixdispatch(&self, bin: &Path) -> Result<Command, LabError> {
        let dest = self.lab.install_nixdispatch(bin).map_err(|e| {
            failed(format!(
                "nixdispatch-lab: cannot copy {}: {e}",
                bin.display()
            ))
        })?;
        Ok(self.command(&dest.to_string_lossy()))
    }

    /// Is `path` valid in vermax's store?
    pub fn has(&self, path: &str) -> bool {
        let mut c = self.root_command("nix-store");
        c.args(["--check-validity", path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().map(|s| s.success()).unwrap_or(false)
    }

    /// Writes root's `known_hosts` (with or without seasmoke's key).
    pub fn set_root_known_host(&mut self, known: bool) -> Result<(), LabError> {
        let text = if known {
            format!("seasmoke {}\n", self.lab.host_key_pub)
        } else {
            String::new()
        };
        sys::write_mode(&self.root_home().join(".ssh/known_hosts"), &text, 0o600)?;
        self.opts.root_known_host = known;
        Ok(())
    }
}

impl Drop for DaemonClient<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}
