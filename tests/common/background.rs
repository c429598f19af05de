//! A command running in the background while the test acts on the lab (kills the builder, sends
//! Ctrl-C, switches a fault), its stderr lines arriving on a channel.

use nixdispatch_lab::{ClientNix, Lab};
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGINT: i32 = 2;

/// A command in the background, as in a terminal: the leader of its own process group, so that
/// [`Background::ctrl_c`] reaches the group as a terminal's Ctrl-C would. Dropping it kills the
/// command if it still runs.
pub struct Background {
    pub child: Child,
    pub lines: Receiver<String>,
    /// The stderr lines read so far (by the waits below), trailing whitespace trimmed.
    pub seen: Vec<String>,
    pub started: Instant,
    /// When a wait below saw it exit.
    pub ended: Option<Instant>,
}

impl Background {
    /// Starts `cmd` with no stdin, its stdout dropped and its stderr read line by line (bytes,
    /// decoded lossily: the output under test may carry invalid UTF-8).
    pub fn start(mut cmd: Command) -> Background {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(stderr);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
                let _ = tx.send(String::from_utf8_lossy(&buf).trim_end().to_owned());
                buf.clear();
            }
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
            started: Instant::now(),
            ended: None,
        }
    }

    /// nixdispatch with `args`, run as vermax with Nix `v`.
    pub fn nixdispatch(lab: &Lab, v: ClientNix, args: &[&str]) -> Background {
        let mut cmd = lab.nixdispatch(v, super::bin());
        cmd.args(args);
        Background::start(cmd)
    }

    /// `nixdispatch --builder SPEC --progress plain build ATTR` as vermax (Nix 2.8).
    pub fn build(lab: &Lab, attr: &str) -> Background {
        super::Nixdispatch::build_on_seasmoke(lab, attr).background()
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

    /// Waits (at most `limit`) for a stderr line containing `text`, failing the test with every
    /// line seen when none came.
    pub fn expect_line(&mut self, text: &str, limit: Duration) {
        assert!(
            self.wait_for(text, limit),
            "no line with {text:?} within {limit:?}: {:#?}",
            self.seen
        );
    }

    /// `--builder SEASMOKE --progress plain build ATTR` as vermax (Nix 2.8), once its build is
    /// under way on seasmoke (its "building ATTR on seasmoke" line, within a minute).
    pub fn building_on_seasmoke(lab: &Lab, attr: &str) -> Background {
        let mut run = Background::build(lab, attr);
        let line = format!("building {attr} on seasmoke");
        run.expect_line(&line, Duration::from_secs(60));
        run
    }

    /// Waits until `path` exists, failing the test (with every line seen) after `limit`.
    pub fn wait_for_file(&mut self, path: &Path, limit: Duration) {
        let t0 = Instant::now();
        while !path.exists() {
            self.seen.extend(self.lines.try_iter());
            assert!(
                t0.elapsed() < limit,
                "{} never appeared: {:#?}",
                path.display(),
                self.seen
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Did a stderr line seen so far contain `text`?
    pub fn saw(&self, text: &str) -> bool {
        self.seen.iter().any(|l| l.contains(text))
    }

    /// Ctrl-C as a terminal sends it: SIGINT to the whole foreground group.
    pub fn ctrl_c(&self) {
        // SAFETY: kill only sends a signal, here to the group we started.
        unsafe { kill(-(self.child.id() as i32), SIGINT) };
    }

    /// SIGINT to the command's own process only.
    pub fn interrupt(&self) {
        // SAFETY: kill only sends a signal, here to our own child.
        unsafe { kill(self.child.id() as i32, SIGINT) };
    }

    /// The exit status, once it exits before `deadline` (then the lines that came after are
    /// collected too); `None` when it still runs at `deadline`.
    pub fn exit_by(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                self.ended = Some(Instant::now());
                std::thread::sleep(Duration::from_millis(200));
                self.seen.extend(self.lines.try_iter());
                return Some(status);
            }
            if Instant::now() > deadline {
                self.seen.extend(self.lines.try_iter());
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit, failing the test after `limit` from the start, with every line seen.
    pub fn exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = self.started + limit;
        match self.exit_by(deadline) {
            Some(status) => status,
            None => panic!("still running after {limit:?}: {:#?}", self.seen),
        }
    }

    /// Waits for the exit, failing the test (and killing the command) when it takes more than
    /// `limit` from now. Returns the exit code and how long the exit took.
    pub fn exit_within(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let t0 = Instant::now();
        match self.exit_by(t0 + limit) {
            Some(status) => (status.code(), self.ended.unwrap_or(t0) - t0),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.seen.extend(self.lines.try_iter());
                panic!(
                    "still running {limit:?} after it was asked to stop: {:#?}",
                    self.seen
                );
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
