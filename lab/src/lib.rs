//! # nixdispatch-lab: two real Nix hosts on one machine
//!
//! A [`Lab`] is an isolated set of real hosts on this one machine, for nixdispatch's tests and for
//! people trying commands by hand (`nixdispatch-lab up`). Everything is real: real `nix`, real
//! `sshd`, real stores, real HTTP. Many labs can run in parallel (one per test); dropping a
//! [`Lab`] kills its processes and removes its directory. It needs root (mount namespaces,
//! chroot, sshd) and what `scripts/lab-deps` installs.
//!
//! ## Hosts
//! - **seasmoke**, the builder: Nix 2.26.3 and sshd from the Debian trixie root
//!   (`/var/lib/nixdispatch-lab/trixie`, or `$NIXDISPATCH_LAB_ROOT/trixie`), run as
//!   `unshare --mount --pid --fork --kill-child --uts` + chroot, with the lab's own store bound
//!   on the root's `/nix`. Killing the namespace's init (pid 1) kills every session and
//!   `nix-daemon --stdio` at once, and the private mounts vanish with it.
//!   Its nix settings come from `NIX_CONF_DIR=LABDIR/seasmoke/etc-nix`, carried into ssh
//!   sessions by `SetEnv` in its `sshd_config`.
//! - **vermax**, the client, in two variants ([`ClientNix`]): `V2_8` is this machine's own Nix
//!   2.8 in a private mount namespace whose `/nix` is the lab's; `V2_26` is a chroot into the
//!   trixie root (Nix 2.26.3 + nh 4.4 in `/usr/local/bin/nh`) with its own `/nix`. Both see the
//!   lab directory at the same absolute path, have hostname `vermax`, and read nix settings only
//!   from `NIX_CONFIG` (plus an empty `NIX_CONF_DIR`, so `/etc/nix` of the machine or of the
//!   trixie root is never read).
//! - **vermax-2.34** ([`ClientNix::V2_34`]): a chroot of the Debian sid root ([`sid_root`], Nix
//!   2.34.8 + nh 4.4) like the 2.26 client; **seasmoke-2.34**: seasmoke started from the sid root
//!   instead of trixie ([`LabOptions::builder_nix`] = [`BuilderNix::V2_34`]).
//! - **upstream**: an HTTP binary cache (a small std server in this process) over a `file://`
//!   cache directory, signed with its own key, which the client trusts.
//! - A TCP proxy (threads in this process) in front of seasmoke's sshd adds a one-way delay in
//!   each direction and injects [`Fault`]s. The port in the lab's ssh config is the proxy's.
//!
//! ## Using it in a test
//! ```no_run
//! use nixdispatch_lab::{skip_unless_root, ClientNix, Fault, Lab, LabOptions};
//! # fn main() {
//! if skip_unless_root("my_test") { return; } // skips without root, panics when CI=true
//! let lab = Lab::start(LabOptions { latency: std::time::Duration::from_millis(30),
//!                                   configure_builders_in_nix: true, ..Default::default() })
//!     .expect("lab");
//! let bin = std::path::Path::new("target/debug/nixdispatch"); // env!("CARGO_BIN_EXE_nixdispatch")
//! let built = lab.build_on_builder(&lab.flake_ref("chain")).expect("seed seasmoke's store");
//! let out = lab.nixdispatch(ClientNix::V2_26, bin)
//!     .args(["build", &lab.flake_ref("chain")])
//!     .output().expect("run");
//! assert!(out.status.success() && lab.client_has(ClientNix::V2_26, &built[0]));
//! lab.set_fault(Fault::Down); // from now on: connection refused
//! # }
//! ```
//! Commands from [`Lab::client_command`] / [`Lab::nixdispatch`] get exactly the client's
//! environment ([`Lab::client_env`]); add or override variables with `Command::env`. Fixture
//! refs: [`Lab::flake_ref`] (`hello`, `chain`, `wide`, `big`, `fail`, `slow`, `home`, `toplevel`,
//! plus [`LabOptions::fixtures`] / [`Lab::add_fixture`]), [`Lab::flake`] for `home`/`os`
//! (`homeConfigurations."root@vermax"` and `.root`, `nixosConfigurations.vermax`).
//! Markers of activations: [`Lab::marker`]. A multi-user vermax (nix-daemon as root, a
//! non-root user `alice`, root-only builder key): [`Lab::start_daemon`] (module `daemon`).
//!
//! ## Directory layout (`LABDIR`, e.g. `/tmp/nixdispatch-lab-XXXXXX`)
//! ```text
//! bin/vermax-2.8, bin/vermax-2.26, bin/vermax-2.34   run a command (or a shell) as the client
//! bin/seasmoke                      run a command on seasmoke's store (no ssh)
//! bin/upstream                      run a command on the scratch store that fills the cache
//! bin/nixdispatch                   the binary under test, once Lab::nixdispatch copied it
//! ssh_config known_hosts client_key home/ markers/ flake/flake.nix registry.json
//! vermax/{etc-nix,nix-2.8,nix-2.26,nix-2.34}  seasmoke/{nix,etc-nix,sshd*,*.log,...}  upstream/{cache,nix,...}
//! ```
//! The `bin/` scripts set the lab's environment themselves unless `NIXDISPATCH_LAB` already
//! names this lab, so the same script serves a person (no env needed) and the harness (which
//! passes its own env, and lets a test override any variable with `Command::env`).
//!
//! ## What was learned on this machine (Debian 12 host, kernel 6.x, 2 cores)
//! - `tc netem` is unavailable: latency comes from the userspace proxy. The delay is applied per
//!   chunk at its read time, so it adds latency without capping throughput.
//! - ssh reads `~/.ssh` from the passwd home, not `$HOME`: `-F LABDIR/ssh_config` (via
//!   `NIX_SSHOPTS`) makes ssh ignore `/etc/ssh/ssh_config` and `~/.ssh/config`; the file sets
//!   `IdentitiesOnly`, `UserKnownHostsFile`, `GlobalKnownHostsFile /dev/null`,
//!   `HostKeyAlias seasmoke`, `StrictHostKeyChecking yes`, `BatchMode yes`. Never accept-new.
//! - `nix store ping --store ssh-ng://seasmoke`: Nix 2.8 prints URL and version only; Nix 2.26
//!   prints `Trusted: 1` (root over `nix-daemon --stdio` is trusted) and an empty
//!   `Store URL: ssh-ng://` (a 2.26 display quirk).
//! - Remote builds with `--builders 'ssh-ng://seasmoke x86_64-linux' --max-jobs 0` work from
//!   both clients; outputs come back without signatures (the build hook imports them).
//!   Derivation and output paths of the fixtures are identical under 2.8 and 2.26.
//! - `path:` flake refs need no git and no lock file (a flake without inputs writes none).
//! - The chroot client cannot share a store with the 2.8 client safely (schema upgrades), so
//!   each variant has its own store (`vermax/nix-2.8`, `vermax/nix-2.26`).
//! - nh 4.4 in the 2.26 client: `nh home switch -c root@vermax FLAKE` and
//!   `nh os switch -H vermax FLAKE` both work, with two conditions: nix-output-monitor is not
//!   installed, so pass `--no-nom` (otherwise nh fails with "No such file or directory"); and
//!   `nh os` refuses to run as root unless `-R`/`NH_BYPASS_ROOT_CHECK=true`, which the lab sets
//!   (vermax's only user is root). nh does not check `/etc/NIXOS`; it checks that the toplevel
//!   has `bin/switch-to-configuration`, `nixos-version`, `init` and `sw/bin` (the fixture has
//!   them), skips the diff when `/run/current-system` is missing, sets the profile
//!   `/nix/var/nix/profiles/system` (in the lab's private store), then runs
//!   `switch-to-configuration test` and `... boot` (markers `os-test` and `os-boot`).
//!   nh warns that Nix 2.26.3 is older than its recommended 2.31.2; harmless here.
//! - chroot(1) always changes to `/`: the scripts `cd` back to the caller's directory inside the
//!   chroot (works for directories under the lab dir, which is mounted at the same path).
//! - The machine's `/nix` must exist as a mount point for the 2.8 client; the lab creates the
//!   empty directory when missing (and `TRIXIE/nix`). Nothing is ever mounted in the machine's
//!   own mount namespace.
//! - `unshare --fork` ignores SIGINT/SIGTERM in its parent, so client commands do not fork:
//!   the pid a test spawns is, after a chain of `exec`s, the program itself (signals reach it).
//! - Nix 2.8's `nix store ping` prints on stderr, 2.26's on stdout.
//! - Cleanup: every process the lab starts carries `NIXDISPATCH_LAB=LABDIR` in its environment
//!   (seasmoke's ssh sessions get it via `SetEnv`); Drop kills seasmoke's pid namespace, then
//!   every process still carrying the marker, then removes the directory.
//! - The machine's pid 1 (`process_api`) reaps orphans only about a second later: killing the
//!   namespace leaves its init a zombie for ~1.2 s. Zombies are dead, so the lab stops waiting
//!   for them (Drop went from ~1.7 s to ~0.1 s).
//! - `unshare --kill-child` covers unshare dying, not the test process dying without Drop
//!   (SIGKILL, abort, a leaked `static` lab). A `PR_SET_PDEATHSIG` would follow the spawning
//!   *thread* (each test is a thread), so instead the namespace's init waits on a pipe on its
//!   stdin whose write end only the lab holds: EOF ends the namespace. Seen here: SIGKILL of
//!   `nixdispatch-lab up` takes its sshd down at once. Lab directories whose `lock` (flock) is
//!   free belong to dead owners; the next `Lab::start` removes them.
//! - sshd ports are picked by binding port 0 and releasing it; another lab can grab the port
//!   before sshd binds it, and then a banner on the port is not ours. So readiness means a
//!   banner *and* "Server listening on 127.0.0.1 port N." in our sshd's log; else new ports.
//! - Choices (reasoned, not forced by failures): no store shared by the two clients (2.26 may
//!   upgrade the schema under 2.8); never `StrictHostKeyChecking=accept-new`; never the
//!   machine's `/etc/nix` (shared with others: each host gets its own `NIX_CONF_DIR`); an
//!   in-process std HTTP server rather than `python3 -m http.server` (no extra process to reap).
//! - nix-output-monitor is not packaged in trixie, hence `--no-nom` for nh above.
//! - Nix 2.34 (sid root): the same fixtures, flags and scripts work unchanged as client and as
//!   builder; nh 4.4 runs there without its version warning; `nix store info`/`store ping`
//!   print on stderr (2.26 too). With a lab directory outside `/tmp`, the chroot hosts create
//!   the lab's path inside the root they run from (trixie or sid); Drop removes both.
//! - Timings seen here (2 shared cores): `Lab::start` 0.1-0.5 s, Drop 0.06-0.15 s, a remote
//!   3-derivation chain 0.5-0.8 s, the 9 smoke tests in parallel 5-9 s.

#![warn(missing_docs)]

pub mod daemon;
mod fixtures;
mod http;
mod proxy;
mod roots;
mod sys;

pub use daemon::{DaemonClient, DaemonOptions, Sudo};
pub use fixtures::{default_fixtures, Fixture, Shape};
pub use roots::{sid_root, BuilderNix};

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Where `scripts/lab-deps` puts the trixie root, unless `NIXDISPATCH_LAB_ROOT` says otherwise.
pub const DEFAULT_LAB_ROOT: &str = "/var/lib/nixdispatch-lab";

/// The environment variable that marks every process of a lab (value: the lab directory).
pub const LAB_MARKER_VAR: &str = "NIXDISPATCH_LAB";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SYSTEM: &str = "x86_64-linux";

/// Which Nix the client (vermax) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientNix {
    /// This machine's Debian 12 Nix 2.8.0, in a private mount namespace with the lab's `/nix`.
    V2_8,
    /// Nix 2.26.3 and nh 4.4 in a chroot of the Debian trixie root, with the lab's `/nix`.
    V2_26,
    /// Nix 2.34.8 and nh 4.4 in a chroot of the Debian sid root ([`sid_root`]), with the lab's
    /// `/nix`.
    V2_34,
}

impl ClientNix {
    /// The 2.8 and 2.26 variants, oldest first: what most lab tests run on.
    pub const ALL: [ClientNix; 2] = [ClientNix::V2_8, ClientNix::V2_26];

    /// Every variant, 2.34 included, oldest first.
    pub const EVERY: [ClientNix; 3] = [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34];

    /// "2.8", "2.26" or "2.34".
    pub fn version(self) -> &'static str {
        match self {
            ClientNix::V2_8 => "2.8",
            ClientNix::V2_26 => "2.26",
            ClientNix::V2_34 => "2.34",
        }
    }

    /// The name of the lab's script for this client (`vermax-2.8`, `vermax-2.26`,
    /// `vermax-2.34`).
    pub fn script_name(self) -> &'static str {
        match self {
            ClientNix::V2_8 => "vermax-2.8",
            ClientNix::V2_26 => "vermax-2.26",
            ClientNix::V2_34 => "vermax-2.34",
        }
    }

    /// Whether nh runs on it (nh needs Nix 2.20+: not on 2.8).
    pub fn has_nh(self) -> bool {
        self != ClientNix::V2_8
    }
}

/// A fault on the way to seasmoke. Each [`Lab::set_fault`] replaces the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Everything works.
    None,
    /// Nothing listens on seasmoke's port: connection refused. Live connections are cut.
    Down,
    /// The port accepts TCP and then never answers. Live connections freeze too (a black
    /// hole) until the fault is lifted.
    Tarpit,
    /// New connections reach an sshd with another host key: "host key verification failed".
    HostKeyChanged,
    /// The client key is no longer in seasmoke's authorized keys: "Permission denied".
    AuthRefused,
    /// Every connection open now stops passing data in both directions, its sockets left open
    /// (a half-open link: nothing is refused or closed, nothing arrives). New connections work.
    Stall,
}

/// How to start a lab. `LabOptions::default()` gives: no latency, no substituters, an unsigned
/// builder, `builders` not set in the client's nix config.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// One-way delay added in each direction between the client and seasmoke's sshd (so a round
    /// trip costs twice this).
    pub latency: Duration,
    /// The client's `substituters` is the lab's HTTP cache (otherwise empty). The cache runs in
    /// every lab either way, and seasmoke uses it as its substituter when this is set.
    pub http_cache: bool,
    /// seasmoke signs what it builds (`secret-key-files`) and the client trusts that key.
    pub builder_signs: bool,
    /// Put `builders = <builder_spec>` in the client's nix config. Otherwise nix's default
    /// applies: `@$NIX_CONF_DIR/machines`, i.e. the file [`Lab::client_conf_dir`]`/machines`
    /// (absent unless a test writes it).
    pub configure_builders_in_nix: bool,
    /// maxJobs field of [`Lab::builder_spec`].
    pub builder_max_jobs: u32,
    /// More packages for the fixture flake, beside [`default_fixtures`].
    pub fixtures: Vec<Fixture>,
    /// Lines appended to the client's `NIX_CONFIG`.
    pub extra_nix_config: String,
    /// Which Nix seasmoke runs (2.26 by default; 2.34 from the sid root).
    pub builder_nix: BuilderNix,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            latency: Duration::ZERO,
            http_cache: false,
            builder_signs: false,
            configure_builders_in_nix: false,
            builder_max_jobs: 2,
            fixtures: Vec::new(),
            extra_nix_config: String::new(),
            builder_nix: BuilderNix::default(),
        }
    }
}

/// Why a lab could not start or an operation failed.
#[derive(Debug)]
pub enum LabError {
    /// Not running as root. The lab needs root (mount namespaces, chroot, sshd).
    NotRoot,
    /// Something `scripts/lab-deps` installs is missing.
    Missing(String),
    /// Anything else, with the command's output when there was one.
    Failed(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::NotRoot => write!(
                f,
                "the nixdispatch lab needs root (mount namespaces, chroot, sshd); run as root"
            ),
            LabError::Missing(m) => write!(f, "{m} is missing: run scripts/lab-deps as root"),
            LabError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for LabError {}

impl From<std::io::Error> for LabError {
    fn from(e: std::io::Error) -> Self {
        LabError::Failed(e.to_string())
    }
}

type Result<T, E = LabError> = std::result::Result<T, E>;

/// For lab tests: returns true (after printing why) when the lab cannot run here and the test
/// should return early. Panics instead when `CI=true`: lab tests never skip silently in CI.
///
/// ```no_run
/// if nixdispatch_lab::skip_unless_root("remote_build") { return; }
/// ```
pub fn skip_unless_root(test: &str) -> bool {
    if sys::is_root() {
        return false;
    }
    let why = format!("{test}: {}", LabError::NotRoot);
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why} (CI=true: lab tests must run, not skip)");
    }
    // Straight to the stderr handle: the test harness captures eprintln!, and a skip must show.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED {why}\n").as_bytes(),
    );
    true
}

/// Where the trixie root lives.
pub fn trixie_root() -> PathBuf {
    let base = std::env::var_os("NIXDISPATCH_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LAB_ROOT));
    base.join("trixie")
}

struct Seasmoke {
    child: Child,
    pidns: Option<String>,
    /// The write end of the namespace init's stdin: never written, closed when this process
    /// dies, which ends the namespace even if Drop never ran (SIGKILL, abort, leaked Lab).
    _lifeline: Option<std::process::ChildStdin>,
}

struct Ports {
    sshd: u16,
    impostor: u16,
}

/// A running lab. See the crate docs. Dropping it cleans everything up.
pub struct Lab {
    dir: PathBuf,
    trixie: PathBuf,
    opts: LabOptions,
    nonce: Mutex<String>,
    fixtures: Mutex<Vec<Fixture>>,
    proxy: proxy::Proxy,
    http: http::HttpCache,
    ports: Mutex<Ports>,
    seasmoke: Mutex<Option<Seasmoke>>,
    fault: Mutex<Fault>,
    host_key_pub: String,
    cache_public_key: String,
    builder_public_key: String,
    copied_bin: Mutex<Option<(PathBuf, SystemTime, u64)>>,
    extra_mountpoint: Option<PathBuf>,
    /// `LABDIR/lock`, flock'ed while this lab lives: a later lab that finds it unlocked knows
    /// the owner died without cleaning up, and removes the directory.
    _lock: fs::File,
}

// Tests share a lab across threads (a fault switched while a build runs elsewhere).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lab>();
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn failed(msg: impl Into<String>) -> LabError {
    LabError::Failed(msg.into())
}

/// The namespace + chroot preamble shared by seasmoke, the 2.26 client and the cache filler.
/// Arguments: TRIXIE NIXDIR LABDIR HOSTNAME COMMAND...
const CHROOT_SCRIPT: &str = r#"set -e
T=$1 N=$2 L=$3 H=$4; shift 4
mount --bind "$N" "$T/nix"
mount -t proc proc "$T/proc"
mount --rbind /dev "$T/dev"
mount -t tmpfs -o mode=1777 tmpfs "$T/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$T/run"
mkdir -p "$T/run/sshd" "$T$L"
mount --bind "$L" "$T$L"
hostname "$H"
exec chroot "$T" /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD" "$@""#;

/// The private-/nix preamble of the 2.8 client. Arguments: NIXDIR HOSTNAME COMMAND...
const HOST_NS_SCRIPT: &str = r#"set -e
mount --bind "$1" /nix
hostname "$2"
shift 2
exec "$@""#;

impl Lab {
    /// Starts a lab: keys, configs, fixture flake, seasmoke's sshd (and its impostor twin for
    /// [`Fault::HostKeyChanged`]), the proxy and the HTTP cache. About a quarter second.
    pub fn start(opts: LabOptions) -> Result<Lab> {
        if !sys::is_root() {
            return Err(LabError::NotRoot);
        }
        let trixie = trixie_root();
        for need in [
            "usr/sbin/sshd",
            "usr/bin/nix-daemon",
            "usr/bin/nix",
            "bin/bash",
        ] {
            if !trixie.join(need).exists() {
                return Err(LabError::Missing(format!(
                    "{}",
                    trixie.join(need).display()
                )));
            }
        }
        for need in [
            "/usr/bin/nix",
            "/usr/bin/unshare",
            "/usr/bin/ssh",
            "/usr/bin/ssh-keygen",
            "/usr/bin/hostname",
        ] {
            if !Path::new(need).exists() {
                return Err(LabError::Missing(need.to_string()));
            }
        }
        if let Some(need) = roots::missing_in(&opts.builder_nix.root()) {
            return Err(LabError::Missing(need.display().to_string()));
        }
        // Mount points: an empty /nix on the machine (for the 2.8 client) and in the roots.
        fs::create_dir_all("/nix")?;
        fs::create_dir_all(trixie.join("nix"))?;
        if sid_root().is_dir() {
            fs::create_dir_all(sid_root().join("nix"))?;
        }

        let base = std::env::temp_dir();
        sweep_stale_labs(&base);
        let tmp = tempfile::Builder::new()
            .prefix("nixdispatch-lab-")
            .tempdir_in(&base)?;
        let dir = tmp.path().to_path_buf();
        // From here on the Lab owns the directory (Drop removes it, even on a failed start).
        let _ = tmp.keep();
        let lock = lock_lab_dir(&dir)?;
        let extra_mountpoint = if dir.starts_with("/tmp") {
            None
        } else {
            Some(trixie.join(dir.strip_prefix("/").unwrap_or(&dir)))
        };

        let mut half = HalfLab {
            dir: dir.clone(),
            extra_mountpoint: extra_mountpoint.clone(),
        };
        for d in [
            "bin",
            "home",
            "markers",
            "flake",
            "vermax/etc-nix",
            "vermax/nix-2.8",
            "vermax/nix-2.26",
            "vermax/nix-2.34",
            "seasmoke/nix",
            "seasmoke/etc-nix",
            "seasmoke/home",
            "upstream/nix",
            "upstream/etc-nix",
            "upstream/cache",
        ] {
            fs::create_dir_all(dir.join(d))?;
        }

        // Keys.
        let keygen = |file: &str, comment: &str| -> Result<String> {
            let mut c = Command::new("ssh-keygen");
            c.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(dir.join(file));
            sys::run(c, "ssh-keygen").map_err(failed)?;
            let pubkey = fs::read_to_string(dir.join(format!("{file}.pub")))?;
            Ok(pubkey.trim().to_string())
        };
        let host_key_pub = keygen("seasmoke/host_key", "seasmoke")?;
        keygen("seasmoke/impostor_host_key", "impostor")?;
        let client_pub = keygen("client_key", "root@vermax")?;
        fs::write(
            dir.join("seasmoke/authorized_keys"),
            format!("{client_pub}\n"),
        )?;
        let host_key_fields: Vec<&str> = host_key_pub.split_whitespace().take(2).collect();
        let host_key_pub = host_key_fields.join(" ");
        fs::write(
            dir.join("known_hosts"),
            format!("seasmoke {host_key_pub}\n"),
        )?;

        let nix_key = |name: &str, sub: &str| -> Result<String> {
            let sec = dir.join(format!("{sub}/signing.sec"));
            let public = dir.join(format!("{sub}/signing.pub"));
            let mut c = Command::new("unshare");
            c.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-ec",
            ])
            .arg("mount --bind \"$1\" /nix; shift; exec \"$@\"")
            .arg("sh")
            .arg(dir.join("upstream/nix"))
            .args(["nix-store", "--generate-binary-cache-key", name])
            .arg(&sec)
            .arg(&public)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", dir.join("home"))
            .env("NIX_CONF_DIR", dir.join("vermax/etc-nix"))
            .env("NIX_CONFIG", "build-users-group =");
            sys::run(c, "nix-store --generate-binary-cache-key").map_err(failed)?;
            Ok(fs::read_to_string(&public)?.trim().to_string())
        };
        let cache_public_key = nix_key("upstream-lab-1", "upstream")?;
        let builder_public_key = nix_key("seasmoke-lab-1", "seasmoke")?;

        // Network: the sshd ports, the proxy in front, the HTTP cache.
        let ports = pick_ports()?;
        let proxy = proxy::Proxy::start(ports.sshd, ports.impostor, opts.latency)?;
        let http = http::HttpCache::start(dir.join("upstream/cache"))?;

        let mut fixtures = default_fixtures();
        for f in &opts.fixtures {
            fixtures.retain(|g| g.name != f.name);
            fixtures.push(f.clone());
        }
        let lab = Lab {
            dir: dir.clone(),
            trixie,
            opts,
            nonce: Mutex::new(sys::random_hex(6)),
            fixtures: Mutex::new(fixtures),
            proxy,
            http,
            ports: Mutex::new(ports),
            seasmoke: Mutex::new(None),
            fault: Mutex::new(Fault::None),
            host_key_pub,
            cache_public_key,
            builder_public_key,
            copied_bin: Mutex::new(None),
            extra_mountpoint,
            _lock: lock,
        };
        half.dir = PathBuf::new(); // the Lab's Drop takes over
        drop(half);

        lab.write_files()?;
        lab.write_flake()?;
        lab.start_seasmoke()?;
        Ok(lab)
    }

    // ----- paths and settings -------------------------------------------------------------

    /// The lab directory (visible at the same path in every host).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ssh config file the lab writes (`Host seasmoke`, through the proxy).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    /// The client's `NIX_CONF_DIR` (holds an empty `nix.conf`; write a `machines` file here to
    /// test nix's default `builders = @$NIX_CONF_DIR/machines`).
    pub fn client_conf_dir(&self) -> PathBuf {
        self.dir.join("vermax/etc-nix")
    }

    /// Where the markers of the fixtures' activation scripts land.
    pub fn markers_dir(&self) -> PathBuf {
        self.dir.join("markers")
    }

    /// The content of `markers/NAME` (trimmed), if it exists: `home-activated` and
    /// `os-test`/`os-boot`/`os-switch` hold the store path that was activated;
    /// `home-activations` and `os-activations` accumulate one line per activation.
    pub fn marker(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.markers_dir().join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The fixture flake's directory.
    pub fn flake_dir(&self) -> PathBuf {
        self.dir.join("flake")
    }

    /// `path:LABDIR/flake` (works with Nix 2.8 and 2.26; no git needed).
    pub fn flake(&self) -> String {
        format!("path:{}", self.flake_dir().display())
    }

    /// `path:LABDIR/flake#ATTR`, e.g. `flake_ref("chain")` for `packages.x86_64-linux.chain`, or
    /// `flake_ref("homeConfigurations.root.activationPackage")`.
    pub fn flake_ref(&self, attr: &str) -> String {
        format!("{}#{attr}", self.flake())
    }

    /// The nonce in every fixture derivation of this lab.
    pub fn nonce(&self) -> String {
        lock(&self.nonce).clone()
    }

    /// Rewrites the flake with a new nonce, so every fixture path is fresh again.
    pub fn renew_nonce(&self) -> Result<String> {
        let n = sys::random_hex(6);
        *lock(&self.nonce) = n.clone();
        self.write_flake()?;
        Ok(n)
    }

    /// Adds (or replaces) a fixture package and rewrites the flake.
    pub fn add_fixture(&self, f: Fixture) -> Result<()> {
        {
            let mut fx = lock(&self.fixtures);
            fx.retain(|g| g.name != f.name);
            fx.push(f);
        }
        self.write_flake()
    }

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

    /// `http://127.0.0.1:PORT`, the upstream binary cache.
    pub fn cache_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http.port())
    }

    /// The `file://` directory behind [`Lab::cache_url`].
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("upstream/cache")
    }

    /// `METHOD /path STATUS` of every request the HTTP cache served.
    pub fn cache_requests(&self) -> Vec<String> {
        self.http.log()
    }

    /// The cache's public key (`upstream-lab-1:...`), trusted by the client.
    pub fn cache_public_key(&self) -> &str {
        &self.cache_public_key
    }

    /// seasmoke's signing key (`seasmoke-lab-1:...`); used only with `builder_signs`.
    pub fn builder_public_key(&self) -> &str {
        &self.builder_public_key
    }

    /// The proxy's loopback port (the one in the ssh config).
    pub fn builder_port(&self) -> u16 {
        self.proxy.port()
    }

    /// TCP connections the proxy accepted so far.
    pub fn builder_connections(&self) -> u64 {
        self.proxy.accepted()
    }

    /// Cuts every live connection to seasmoke (a network blip); new connections work.
    pub fn drop_builder_connections(&self) {
        self.proxy.drop_connections();
    }

    /// seasmoke's sshd log (both sshd instances, `-e`).
    pub fn builder_log(&self) -> String {
        fs::read_to_string(self.dir.join("seasmoke/sshd.log")).unwrap_or_default()
    }

    /// The options the lab was started with.
    pub fn options(&self) -> &LabOptions {
        &self.opts
    }

    /// The client's `NIX_CONFIG`.
    pub fn client_nix_config(&self) -> String {
        let mut c = String::from(
            "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\n",
        );
        if self.opts.http_cache {
            c += &format!("substituters = {}\n", self.cache_url());
        } else {
            c += "substituters =\n";
        }
        c += &format!("trusted-public-keys = {}", self.cache_public_key);
        if self.opts.builder_signs {
            c += &format!(" {}", self.builder_public_key);
        }
        c += "\n";
        if self.opts.configure_builders_in_nix {
            c += &format!("builders = {}\n", self.builder_spec());
        }
        c += &format!(
            "flake-registry = {}\nconnect-timeout = 5\n",
            self.dir.join("registry.json").display()
        );
        if !self.opts.extra_nix_config.is_empty() {
            c += &self.opts.extra_nix_config;
            if !c.ends_with('\n') {
                c.push('\n');
            }
        }
        c
    }

    /// The client's environment (both variants): `NIX_CONFIG`, `NIX_CONF_DIR`, `NIX_SSHOPTS`,
    /// `HOME`, `USER`, `LOGNAME`, `PATH` (`LABDIR/bin` first), `LANG`, `NH_BYPASS_ROOT_CHECK`,
    /// and the lab marker `NIXDISPATCH_LAB`.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            (LAB_MARKER_VAR.into(), d.to_string()),
            ("PATH".into(), format!("{d}/bin:{PATH}")),
            ("HOME".into(), format!("{d}/home")),
            ("USER".into(), "root".into()),
            ("LOGNAME".into(), "root".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NIX_CONF_DIR".into(), format!("{d}/vermax/etc-nix")),
            ("NIX_SSHOPTS".into(), format!("-F {d}/ssh_config")),
            ("NIX_CONFIG".into(), self.client_nix_config()),
            ("NH_BYPASS_ROOT_CHECK".into(), "true".into()),
        ]
    }

    fn builder_env(&self) -> Vec<(String, String)> {
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

    fn upstream_env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            (LAB_MARKER_VAR.into(), d.to_string()),
            ("PATH".into(), PATH.into()),
            ("HOME".into(), format!("{d}/home")),
            ("USER".into(), "root".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NIX_CONF_DIR".into(), format!("{d}/upstream/etc-nix")),
        ]
    }

    /// The lab script that runs commands as the client variant `v`.
    pub fn client_script(&self, v: ClientNix) -> PathBuf {
        self.dir.join("bin").join(v.script_name())
    }

    /// The physical directory of the client's `/nix`.
    pub fn client_nix_dir(&self, v: ClientNix) -> PathBuf {
        self.dir.join(format!("vermax/nix-{}", v.version()))
    }

    /// Empties the client's store (variant `v`), as on a freshly installed vermax. No client
    /// command of that variant may be running.
    pub fn reset_client(&self, v: ClientNix) -> Result<()> {
        empty_dir(&self.client_nix_dir(v))
    }

    /// Empties seasmoke's store (seasmoke is killed and started again around it).
    pub fn reset_builder(&self) -> Result<()> {
        self.kill_builder();
        empty_dir(&self.builder_nix_dir())?;
        self.start_seasmoke()
    }

    /// The physical directory of seasmoke's `/nix`.
    pub fn builder_nix_dir(&self) -> PathBuf {
        self.dir.join("seasmoke/nix")
    }

    // ----- commands -------------------------------------------------------------------------

    /// `program` run as vermax with Nix version `v`: in its namespace (and chroot for 2.26), with
    /// exactly [`Lab::client_env`] (the caller's environment is not inherited; add with `.env`).
    /// Append arguments with `.arg(..)`. The spawned pid becomes `program` itself (no fork in
    /// between), so signals sent to the child reach the program. The working directory carries
    /// over when it is inside the lab directory (2.26) or anywhere (2.8).
    pub fn client_command(&self, v: ClientNix, program: &str) -> Command {
        let mut c = Command::new(self.client_script(v));
        // In the lab's home, so that `nix build`'s result links land there, not in the caller's
        // directory (a test's is the repository). `Command::current_dir` overrides it.
        c.arg(program)
            .env_clear()
            .envs(self.client_env())
            .current_dir(self.dir.join("home"));
        c
    }

    /// The nixdispatch binary at `bin` (e.g. `env!("CARGO_BIN_EXE_nixdispatch")`) run as vermax:
    /// copied to `LABDIR/bin/nixdispatch` (again when it changed), which runs in both variants.
    pub fn nixdispatch(&self, v: ClientNix, bin: &Path) -> Command {
        if let Err(e) = self.install_nixdispatch(bin) {
            panic!(
                "nixdispatch-lab: cannot copy {} into the lab: {e}",
                bin.display()
            );
        }
        self.client_command(v, &self.dir.join("bin/nixdispatch").to_string_lossy())
    }

    /// Copies the nixdispatch binary into `LABDIR/bin/nixdispatch` (atomically).
    pub fn install_nixdispatch(&self, bin: &Path) -> Result<PathBuf> {
        let meta = fs::metadata(bin)
            .map_err(|e| failed(format!("nixdispatch binary {}: {e}", bin.display())))?;
        let key = (bin.to_path_buf(), meta.modified()?, meta.len());
        let dest = self.dir.join("bin/nixdispatch");
        let mut copied = lock(&self.copied_bin);
        if copied.as_ref() != Some(&key) || !dest.exists() {
            let tmp = self
                .dir
                .join(format!("bin/.nixdispatch.{}", sys::random_hex(4)));
            fs::copy(bin, &tmp)?;
            fs::rename(&tmp, &dest)?;
            *copied = Some(key);
        }
        Ok(dest)
    }

    /// `program` run against seasmoke's store directly (chroot, not over ssh), with seasmoke's
    /// nix settings. Works while seasmoke is killed too.
    pub fn builder_command(&self, program: &str) -> Command {
        let mut c = Command::new(self.dir.join("bin/seasmoke"));
        c.arg(program).env_clear().envs(self.builder_env());
        c
    }

    /// Is `path` valid in the client's store (`nix-store --check-validity`)?
    pub fn client_has(&self, v: ClientNix, path: &str) -> bool {
        let mut c = self.client_command(v, "nix-store");
        c.args(["--check-validity", path]);
        quiet_success(c)
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

    /// Builds `installable` in a scratch store (Nix 2.26) and copies its closure, signed with
    /// the cache key, into the HTTP cache (`compression=none`). Returns the output paths.
    pub fn push_to_cache(&self, installable: &str) -> Result<Vec<String>> {
        let mut c = self.upstream_command("nix");
        c.args(["build", "--no-link", "--print-out-paths", installable]);
        let out = sys::run(c, &format!("building {installable} for the cache")).map_err(failed)?;
        let paths = lines(&out);
        let mut c = self.upstream_command("nix");
        c.args(["copy", "--to", &self.cache_store_uri()])
            .args(&paths);
        sys::run(c, "nix copy to the lab cache").map_err(failed)?;
        Ok(paths)
    }

    /// `file://LABDIR/upstream/cache?compression=none&secret-key=...`: the store URI that
    /// writes (and signs) into the HTTP cache. Use with [`Lab::upstream_command`].
    pub fn cache_store_uri(&self) -> String {
        format!(
            "file://{}?compression=none&secret-key={}",
            self.cache_dir().display(),
            self.dir.join("upstream/signing.sec").display()
        )
    }

    /// `program` run on the scratch store that fills the cache (Nix 2.26 chroot).
    pub fn upstream_command(&self, program: &str) -> Command {
        let mut c = Command::new(self.dir.join("bin/upstream"));
        c.arg(program).env_clear().envs(self.upstream_env());
        c
    }

    // ----- faults and latency ---------------------------------------------------------------

    /// Switches to fault `f` (replacing the current one). Panics if the port cannot be bound
    /// again when leaving [`Fault::Down`] (another process took it).
    pub fn set_fault(&self, f: Fault) {
        let mut cur = lock(&self.fault);
        let auth = self.dir.join("seasmoke/authorized_keys");
        let client_pub = fs::read_to_string(self.dir.join("client_key.pub")).unwrap_or_default();
        let keys = if f == Fault::AuthRefused {
            "# the client key was removed (Fault::AuthRefused)\n".to_string()
        } else {
            client_pub
        };
        if let Err(e) = write_atomic(&auth, &keys) {
            panic!("nixdispatch-lab: cannot write {}: {e}", auth.display());
        }
        let route = match f {
            Fault::None | Fault::AuthRefused | Fault::Stall => proxy::Route::Normal,
            Fault::Down => proxy::Route::Down,
            Fault::Tarpit => proxy::Route::Tarpit,
            Fault::HostKeyChanged => proxy::Route::Impostor,
        };
        if let Err(e) = self.proxy.set_route(route) {
            panic!(
                "nixdispatch-lab: cannot listen on port {} again: {e}",
                self.proxy.port()
            );
        }
        self.proxy.stall_live(f == Fault::Stall);
        *cur = f;
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        *lock(&self.fault)
    }

    /// Sets the one-way delay in each direction (applies to data read from now on, also on
    /// live connections).
    pub fn set_latency(&self, d: Duration) {
        self.proxy.set_delay(d);
    }

    /// The current one-way delay.
    pub fn latency(&self) -> Duration {
        self.proxy.delay()
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

    /// Is seasmoke's sshd running (not killed)?
    pub fn builder_running(&self) -> bool {
        lock(&self.seasmoke).is_some()
    }

    /// Starts seasmoke again after [`Lab::kill_builder`] (same keys, same store).
    pub fn restart_builder(&self) -> Result<()> {
        self.kill_builder();
        self.start_seasmoke()
    }

    // ----- internals ----------------------------------------------------------------------

    fn start_seasmoke(&self) -> Result<()> {
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
                // EOF: when the Lab's process dies without Drop running.
                "/usr/sbin/sshd -D -e -f \"$0\" & /usr/sbin/sshd -D -e -f \"$1\" & read -r _",
            ])
            .arg(format!("{d}/seasmoke/sshd_config"))
            .arg(format!("{d}/seasmoke/sshd_impostor_config"))
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

    fn write_sshd_configs(&self) -> Result<()> {
        let d = self.dir.display();
        let ports = lock(&self.ports);
        let env = format!(
            "SetEnv {LAB_MARKER_VAR}={d} NIX_CONF_DIR={d}/seasmoke/etc-nix HOME={d}/seasmoke/home"
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

    fn write_flake(&self) -> Result<()> {
        let text = fixtures::flake_nix(&self.nonce(), &self.markers_dir(), &lock(&self.fixtures));
        write_atomic(&self.flake_dir().join("flake.nix"), &text)?;
        Ok(())
    }

    fn write_files(&self) -> Result<()> {
        let d = self.dir.display().to_string();
        let proxy_port = self.proxy.port();
        fs::write(
            self.dir.join("ssh_config"),
            format!(
                "# The lab's complete ssh config: use with ssh -F {d}/ssh_config\n\
                 Host seasmoke\n\
                 \x20 HostName 127.0.0.1\n\
                 \x20 Port {proxy_port}\n\
                 \x20 User root\n\
                 \x20 IdentityFile {d}/client_key\n\
                 \x20 IdentitiesOnly yes\n\
                 \x20 IdentityAgent none\n\
                 \x20 UserKnownHostsFile {d}/known_hosts\n\
                 \x20 GlobalKnownHostsFile /dev/null\n\
                 \x20 HostKeyAlias seasmoke\n\
                 \x20 StrictHostKeyChecking yes\n\
                 \x20 UpdateHostKeys no\n\
                 \x20 BatchMode yes\n\
                 Host *\n\
                 \x20 StrictHostKeyChecking yes\n\
                 \x20 BatchMode yes\n"
            ),
        )?;
        fs::write(
            self.dir.join("registry.json"),
            "{\"flakes\":[],\"version\":2}\n",
        )?;
        fs::write(self.dir.join("vermax/etc-nix/nix.conf"), "")?;
        let mut seasmoke = format!(
            "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\n\
             trusted-public-keys = {}\nflake-registry = {d}/registry.json\n",
            self.cache_public_key
        );
        if self.opts.http_cache {
            seasmoke += &format!("substituters = {}\n", self.cache_url());
        } else {
            seasmoke += "substituters =\n";
        }
        if self.opts.builder_signs {
            seasmoke += &format!("secret-key-files = {d}/seasmoke/signing.sec\n");
        }
        fs::write(self.dir.join("seasmoke/etc-nix/nix.conf"), seasmoke)?;
        fs::write(
            self.dir.join("upstream/etc-nix/nix.conf"),
            format!(
                "experimental-features = nix-command flakes\nsandbox = false\n\
                 build-users-group =\nsubstituters =\nflake-registry = {d}/registry.json\n"
            ),
        )?;
        fs::write(
            self.dir.join("home/.bashrc"),
            "PS1=\"[${NIXDISPATCH_LAB_HOST:-lab}] \\w# \"\n",
        )?;
        self.write_scripts()?;
        Ok(())
    }

    fn write_scripts(&self) -> Result<()> {
        let d = self.dir.display().to_string();
        let q = |s: &str| sys::sh_quote(s);
        let exports = |env: &[(String, String)]| -> String {
            env.iter()
                .map(|(k, v)| format!("  export {k}={}\n", q(v)))
                .collect()
        };
        let trixie = self.trixie.display().to_string();
        let sid = sid_root().display().to_string();
        let builder_root = self.opts.builder_nix.root().display().to_string();
        let header = |what: &str, env: &[(String, String)], host: &str| {
            format!(
                "#!/bin/sh\n# {what}\n# Lab {d} (nixdispatch-lab). Usage: $0 [COMMAND [ARGS...]] (no command: a shell)\n\
                 set -e\n\
                 if [ \"${{{LAB_MARKER_VAR}:-}}\" != {dq} ]; then\n{exports}fi\n\
                 export NIXDISPATCH_LAB_HOST={host}\n\
                 [ \"$#\" -gt 0 ] || set -- /bin/bash\n",
                dq = q(&d),
                exports = exports(env),
            )
        };
        let chroot_exec_in = |root: &str, nixdir: &str, host: &str| {
            format!(
                "[ -x {root}/usr/bin/nix ] || {{ echo \"$0: {root} is missing: run scripts/lab-deps as root\" >&2; exit 2; }}\n\
                 exec unshare --mount --uts --propagation private -- /bin/sh -ec {} sh {root} {} {} {host} \"$@\"\n",
                q(CHROOT_SCRIPT),
                q(nixdir),
                q(&d),
                root = q(root),
            )
        };
        let chroot_exec = |nixdir: &str, host: &str| chroot_exec_in(&trixie, nixdir, host);
        let client_env = self.client_env();
        let scripts = [
            (
                "vermax-2.8",
                header(
                    "vermax, the client, with this machine's Nix 2.8 and the lab's private /nix",
                    &client_env,
                    "vermax-2.8",
                ) + &format!(
                    "exec unshare --mount --uts --propagation private -- /bin/sh -ec {} sh {} vermax \"$@\"\n",
                    q(HOST_NS_SCRIPT),
                    q(&format!("{d}/vermax/nix-2.8"))
                ),
            ),
            (
                "vermax-2.26",
                header(
                    "vermax, the client, with Nix 2.26 and nh (chroot of the trixie root), private /nix",
                    &client_env,
                    "vermax-2.26",
                ) + &chroot_exec(&format!("{d}/vermax/nix-2.26"), "vermax"),
            ),
            (
                "vermax-2.34",
                header(
                    "vermax, the client, with Nix 2.34 and nh (chroot of the sid root), private /nix",
                    &client_env,
                    "vermax-2.34",
                ) + &chroot_exec_in(&sid, &format!("{d}/vermax/nix-2.34"), "vermax"),
            ),
            (
                "seasmoke",
                header(
                    "a command on seasmoke's store and settings, directly (not over ssh)",
                    &self.builder_env(),
                    "seasmoke",
                ) + &chroot_exec_in(&builder_root, &format!("{d}/seasmoke/nix"), "seasmoke"),
            ),
            (
                "upstream",
                header(
                    "a command on the scratch store that fills the lab's binary cache",
                    &self.upstream_env(),
                    "upstream",
                ) + &chroot_exec(&format!("{d}/upstream/nix"), "upstream"),
            ),
        ];
        for (name, text) in scripts {
            sys::write_mode(&self.dir.join("bin").join(name), &text, 0o755)?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.proxy.set_route(proxy::Route::Down);
        self.kill_builder();
        let marker = format!("{LAB_MARKER_VAR}={}", self.dir.display());
        sys::kill_until_gone(
            || sys::pids_with_env_entry(&marker),
            Duration::from_secs(10),
        );
        remove_lab_dir(&self.dir, self.extra_mountpoint.as_deref());
        if self.extra_mountpoint.is_some() {
            // The sid root's twin of the trixie mount point (2.34 hosts).
            let rel = self.dir.strip_prefix("/").unwrap_or(&self.dir);
            let _ = fs::remove_dir(sid_root().join(rel));
        }
    }
}

/// Cleans a half-started lab (before the Lab value exists).
struct HalfLab {
    dir: PathBuf,
    extra_mountpoint: Option<PathBuf>,
}

impl Drop for HalfLab {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            remove_lab_dir(&self.dir, self.extra_mountpoint.as_deref());
        }
    }
}

fn remove_lab_dir(dir: &Path, extra_mountpoint: Option<&Path>) {
    for _ in 0..20 {
        match fs::remove_dir_all(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    if let Some(m) = extra_mountpoint {
        let _ = fs::remove_dir(m);
    }
}

/// Takes the lab directory's lock (held until the returned file is closed).
fn lock_lab_dir(dir: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd;
    // Locked before it takes its name, so a sweeper never sees it unlocked.
    let f = fs::File::create(dir.join("lock.new"))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    fs::rename(dir.join("lock.new"), dir.join("lock"))?;
    Ok(f)
}

/// Removes lab directories whose owner died without Drop (SIGKILL, abort): their lock is free.
/// Their seasmoke already ended with its owner (see `Seasmoke::_lifeline`); any process still
/// carrying their marker is killed first.
fn sweep_stale_labs(base: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(rd) = fs::read_dir(base) else { return };
    for entry in rd.flatten() {
        let dir = entry.path();
        let is_lab = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("nixdispatch-lab-"))
            && dir.is_dir();
        if !is_lab {
            continue;
        }
        let stale = match fs::File::open(dir.join("lock")) {
            // SAFETY: flock on a file descriptor we own; the lock goes with the file.
            Ok(f) => unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 },
            // No lock file: being created right now, or very old. Only the latter is stale.
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600)),
        };
        let marker = format!("{LAB_MARKER_VAR}={}", dir.display());
        // Without a lock (an older lab), live processes of the lab mean it is in use.
        let stale =
            stale && (dir.join("lock").exists() || sys::pids_with_env_entry(&marker).is_empty());
        if stale {
            sys::kill_until_gone(|| sys::pids_with_env_entry(&marker), Duration::from_secs(5));
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Removes what is inside `dir`, keeping `dir` itself (it may be the source of a bind mount).
fn empty_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)?;
        } else {
            fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn stop_seasmoke(mut s: Seasmoke) {
    // --kill-child: the namespace's init gets SIGKILL when unshare dies, and with it every
    // process of the namespace.
    let _ = s.child.kill();
    let _ = s.child.wait();
    if let Some(ns) = s.pidns {
        sys::kill_until_gone(|| sys::pids_in_namespace(&ns), Duration::from_secs(10));
    }
}

fn pick_ports() -> Result<Ports> {
    // Hold both listeners while picking, so the two ports differ.
    let a = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let b = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(Ports {
        sshd: a.local_addr()?.port(),
        impostor: b.local_addr()?.port(),
    })
}

fn quiet_success(mut c: Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", sys::random_hex(3)));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn sh_quote_quotes_what_needs_it() {
        assert_eq!(sys::sh_quote("/tmp/a-b"), "/tmp/a-b");
        assert_eq!(sys::sh_quote("a b"), "'a b'");
        assert_eq!(sys::sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sys::sh_quote(""), "''");
    }
}
