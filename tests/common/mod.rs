//! Shared helpers of the end-to-end tests: the real nixdispatch binary, run as vermax in a lab.

#![allow(dead_code)]

use nixdispatch_lab::{ClientNix, Lab, LabOptions};
use std::io::Read;
use std::process::{Command, Stdio};
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

/// Runs a command with a hang bound, collecting both pipes.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Run {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
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
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&ro.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&re.join().unwrap_or_default()).into_owned(),
        elapsed,
    }
}

/// A generous bound for commands that should finish in seconds.
pub const BOUND: Duration = Duration::from_secs(120);

/// A nixdispatch build running in the background, its stderr lines arriving on a channel.
pub struct Background {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
    pub started: Instant,
}

impl Background {
    /// Starts `nixdispatch --builder SPEC --progress plain build ATTR` as vermax (Nix 2.8).
    pub fn build(lab: &Lab, attr: &str) -> Background {
        let spec = lab.builder_spec();
        let mut cmd = lab.nixdispatch(ClientNix::V2_8, bin());
        cmd.args([
            "--builder",
            &spec,
            "--progress",
            "plain",
            "build",
            &lab.flake_ref(attr),
        ]);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Waits (at most `limit`) for a stderr line containing `text`; false when none came.
    pub fn wait_for(&mut self, text: &str, limit: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let found = line.contains(text);
                self.seen.push(line);
                if found {
                    return true;
                }
            }
        }
        false
    }

    /// Waits for the exit (failing the test after `limit` from the start), with every line seen.
    pub fn exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                self.started.elapsed() < limit,
                "still running after {limit:?}: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        self.seen.extend(self.lines.try_iter());
        status
    }
}
