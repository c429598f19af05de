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
//! - Away and loops: [`RefusedCache`] and [`StalledCache`] (substituters that are away),
//!   [`Lab::start_vermax_sshd`] (vermax reachable over ssh as `vermax`, on its own store: a
//!   builder that is the client itself), [`LabOptions::builder_daemon_trusted_users`] (seasmoke's
//!   sessions through a daemon that does not trust them), [`DaemonOptions::this_machine_nix`]
//!   (this machine's Nix 2.8 as vermax's daemon: trust not reported).
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
//! ## Where things live (one module per host or job, each adding methods to [`Lab`])
//! - `lab`: the [`Lab`] value and [`Lab::start`]; `options`: [`LabOptions`]; `error`: [`LabError`].
//! - Hosts: `seasmoke` (the builder: sshd in its namespace, its store, its machines line),
//!   `clients` ([`ClientNix`], commands as vermax, nixdispatch copied in), `upstream` (the HTTP
//!   cache and the store that fills it), [`daemon`] (the multi-user vermax).
//! - Jobs: `faults` ([`Fault`], latency, through `proxy`), `files` (layout, keys, `known_hosts`,
//!   ssh config, `nix.conf`s), `flake` and `fixtures` (the fixture flake), `scripts` (the `bin/`
//!   scripts and chroot preambles), `roots` (the Debian roots, prerequisites), `cleanup` (Drop,
//!   the sweep of labs whose owner died), `sys` and `http` (OS helpers, the cache's server).
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
// As in the main crate: no unwrap, expect or panic outside tests (errors are `LabError`s).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cleanup;
mod clients;
pub mod daemon;
mod dead_cache;
mod error;
mod faults;
mod files;
mod fixtures;
mod flake;
mod http;
mod lab;
mod options;
mod proxy;
mod roots;
mod scripts;
mod seasmoke;
mod sys;
mod upstream;
mod vermax_sshd;

pub use clients::ClientNix;
pub use daemon::{DaemonClient, DaemonOptions, Sudo};
pub use dead_cache::{RefusedCache, StalledCache};
pub use error::LabError;
pub(crate) use error::{failed, Result};
pub use faults::Fault;
pub use fixtures::{default_fixtures, Fixture, Shape};
pub use lab::Lab;
pub use options::LabOptions;
pub use roots::{sid_root, trixie_root, BuilderNix};
pub use vermax_sshd::VermaxSshd;

/// Where `scripts/lab-deps` puts the trixie root, unless `NIXDISPATCH_LAB_ROOT` says otherwise.
pub const DEFAULT_LAB_ROOT: &str = "/var/lib/nixdispatch-lab";

/// The environment variable that marks every process of a lab (value: the lab directory).
pub const LAB_MARKER_VAR: &str = "NIXDISPATCH_LAB";

/// The `PATH` of every host's commands.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// For lab tests: returns true (after printing why) when the lab cannot run here and the test
/// should return early. Panics instead when `CI=true`: lab tests never skip silently in CI.
///
/// ```no_run
/// if nixdispatch_lab::skip_unless_root("remote_build") { return; }
/// ```
// Failing the calling test in CI is this helper's job, and a panic is how a test fails.
#[allow(clippy::panic)]
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
