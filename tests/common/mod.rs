//! Shared helpers of the end-to-end tests: the real nixdispatch binary, run as vermax in a lab.

#![allow(dead_code)]

pub mod background;
pub mod nixdispatch;
pub mod procs;
pub mod terminal;

#[allow(unused_imports)] // not every test file runs one
pub use self::{
    background::Background,
    nixdispatch::{lab_or_skip, lab_with, skipped, switch_via, Nixdispatch},
};

use nixdispatch_lab::{ClientNix, Lab, LabOptions};
use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_nixdispatch"))
}

/// Starts a lab or fails the test with the lab's reason.
pub fn lab(opts: LabOptions) -> Lab {
    Lab::start(opts).unwrap_or_else(|e| panic!("the lab did not start: {e}"))
}

/// What a run of nixdispatch did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// stdout as JSON lines.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs nixdispatch as vermax with `args`, killing it after `limit` (a hang bound, not a speed
/// target).
pub fn nixdispatch(lab: &Lab, v: ClientNix, args: &[&str], limit: Duration) -> Run {
    let mut cmd = lab.nixdispatch(v, bin());
    cmd.args(args);
    run_limited(cmd, limit)
}

/// Runs nixdispatch as alice, the daemon variant's non-root user, bounded by [`BOUND`].
pub fn alice(client: &nixdispatch_lab::DaemonClient<'_>, args: &[&str]) -> Run {
    let mut cmd = client.nixdispatch(bin());
    cmd.args(args);
    run_limited(cmd, BOUND)
}

/// Starts the lab's daemon variant (vermax's nix-daemon as root, alice its user), or fails the
/// test with the lab's reason.
pub fn daemon(
    lab: &Lab,
    opts: nixdispatch_lab::DaemonOptions,
) -> nixdispatch_lab::DaemonClient<'_> {
    lab.start_daemon(opts).unwrap_or_else(|e| panic!("{e}"))
}

/// [`daemon`] with the default options as `set` changes them.
pub fn daemon_with(
    lab: &Lab,
    set: impl FnOnce(&mut nixdispatch_lab::DaemonOptions),
) -> nixdispatch_lab::DaemonClient<'_> {
    let mut opts = nixdispatch_lab::DaemonOptions::default();
    set(&mut opts);
    daemon(lab, opts)
}

/// `nixdispatch --builder SPEC --progress plain build ARGS...` as vermax, bounded by [`BOUND`].
pub fn build_plain(lab: &Lab, v: ClientNix, spec: &str, args: &[&str]) -> Run {
    let mut all = vec!["--builder", spec, "--progress", "plain", "build"];
    all.extend_from_slice(args);
    nixdispatch(lab, v, &all, BOUND)
}

/// Plain `nix ARGS` as vermax with Nix `v`, beside nixdispatch (the reference it is held to),
/// bounded by [`BOUND`].
pub fn plain_nix_run(lab: &Lab, v: ClientNix, args: &[&str]) -> Run {
    let mut cmd = lab.client_command(v, "nix");
    cmd.args(args);
    run_limited(cmd, BOUND)
}

/// Runs a command with a hang bound, collecting both pipes.
pub fn run_limited(cmd: Command, limit: Duration) -> Run {
    let (out, elapsed) = run_output(cmd, limit);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    }
}

/// Starts `cmd` with these stdin, stdout and stderr.
pub fn spawn(cmd: &mut Command, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Child {
    cmd.stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"))
}

/// Runs a command with no stdin, killing it after `limit` (a hang bound). Returns its output and
/// how long it ran.
pub fn run_output(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = spawn(&mut cmd, Stdio::null(), Stdio::piped(), Stdio::piped());
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let ro = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let re = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = t0.elapsed();
    let output = Output {
        status,
        stdout: ro.join().unwrap_or_default(),
        stderr: re.join().unwrap_or_default(),
    };
    (output, elapsed)
}

/// Asserts that an `os switch` ran the lab system's switch-to-configuration (its marker, for
/// `switch` or nh's `test`), naming `what` and showing the run if not.
pub fn assert_os_switched(lab: &Lab, what: &str, run: &Run) {
    let switched = lab.marker("os-switch").or_else(|| lab.marker("os-test"));
    assert!(
        switched.is_some(),
        "{what}: switch-to-configuration did not run: {run:?}"
    );
}

/// The subcommands CONTRACT.md promises.
pub const CONTRACT_COMMANDS: [&str; 8] = [
    "build",
    "home",
    "os",
    "plan",
    "probe",
    "doctor",
    "monitor",
    "completions",
];

/// A generous bound for commands that should finish in seconds.
pub const BOUND: Duration = Duration::from_secs(120);
