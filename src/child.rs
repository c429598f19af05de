//! Running nix or nh: in its own process group, stderr streamed line by line to the caller,
//! stdout collected, Ctrl-C and SIGTERM forwarded to the whole group, always reaped.
//!
//! A child in its own group does not get the terminal's Ctrl-C directly, so no half-handled
//! signal races us: we decide, forward SIGINT to every process of the group (nix, nh, their ssh
//! and build processes), give them a moment, then SIGKILL what is left.

use crate::{Error, Result};
use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};

/// Set while [`run`] owns a child: Ctrl-C is then its to handle (forward to the group, reap).
static CHILD_RUNNING: AtomicBool = AtomicBool::new(false);

/// Resolves on Ctrl-C or SIGTERM that arrives while no child runs (planning, probing), so the
/// caller can drop its work: dropping closes the SSH masters and kills unfinished helpers.
/// While [`run`] owns a child, the signal is left to it.
pub async fn interrupted_between_children() {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if !CHILD_RUNNING.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Marks a child as running for as long as it lives.
struct Running;

impl Running {
    fn start() -> Running {
        CHILD_RUNNING.store(true, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        CHILD_RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Variables set for every child [`run`] starts, on top of our own environment.
static CHILD_ENV: std::sync::Mutex<Vec<(OsString, OsString)>> = std::sync::Mutex::new(Vec::new());

/// Sets `key=value` for every child started from now on (e.g. the `NIX_SSHOPTS` that lets nix's
/// ssh ride this run's control masters), without touching our own environment.
pub fn set_child_env(key: impl Into<OsString>, value: impl Into<OsString>) {
    let (key, value) = (key.into(), value.into());
    if let Ok(mut env) = CHILD_ENV.lock() {
        env.retain(|(k, _)| *k != key);
        env.push((key, value));
    }
}

fn child_env() -> Vec<(OsString, OsString)> {
    CHILD_ENV.lock().map(|env| env.clone()).unwrap_or_default()
}

/// How long the group gets after SIGINT before SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

/// How long the pipes may stay open after the child exited.
const DRAIN: Duration = Duration::from_secs(2);

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
}

/// What the child run reports to the caller while it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report<'a> {
    /// A line from one of the child's pipes.
    Line(Pipe, &'a str),
    /// Nothing came for a while: a chance to refresh elapsed times.
    Tick,
}

/// How often [`Report::Tick`] comes while the child is quiet.
const TICK: Duration = Duration::from_millis(200);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// The child's stdout.
    Stdout,
    /// The child's stderr.
    Stderr,
}

/// Runs `argv` (program first), reporting each line of either pipe as it comes (stdout is also
/// collected whole) and a tick when nothing came for a while. Returns `Error::Interrupted` after Ctrl-C/SIGTERM once the
/// whole group is gone.
pub async fn run(argv: &[OsString], mut on: impl FnMut(Report<'_>)) -> Result<Finished> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::input("nothing to run"));
    };
    let name = program.to_string_lossy().into_owned();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let _running = Running::start();
    let mut child = cmd.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => {
            Error::input(format!("{name} is not on PATH: install it or fix PATH"))
        }
        _ => Error::io(format!("starting {name}"), err),
    })?;
    let pgid = child.id().map(|id| id as libc::pid_t);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::input("the child's pipes were not set up"));
    };

    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("listening for Ctrl-C", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("listening for SIGTERM", e))?;

    let mut out_lines = BufReader::new(stdout).lines();
    let mut err_lines = BufReader::new(stderr).lines();
    let mut collected = Vec::new();
    let mut stderr_open = true;
    let mut stdout_open = true;
    let mut exited: Option<ExitStatus> = None;
    // A grandchild that keeps our pipes open (a lingering ssh master) must not hold us hostage
    // after the child itself has exited.
    let drain = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(drain);

    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        if let (Some(status), false, false) = (exited, stderr_open, stdout_open) {
            return Ok(Finished {
                status,
                stdout: collected,
            });
        }
        tokio::select! {
            line = err_lines.next_line(), if stderr_open => match line {
                Ok(Some(line)) => on(Report::Line(Pipe::Stderr, &line)),
                _ => stderr_open = false,
            },
            line = out_lines.next_line(), if stdout_open => match line {
                Ok(Some(line)) => {
                    collected.extend_from_slice(line.as_bytes());
                    collected.push(b'\n');
                    on(Report::Line(Pipe::Stdout, &line));
                }
                _ => stdout_open = false,
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some(status.map_err(|e| Error::io(format!("waiting for {name}"), e))?);
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN);
            }
            _ = &mut drain, if exited.is_some() => {
                if let Some(status) = exited {
                    return Ok(Finished { status, stdout: collected });
                }
            }
            _ = ticks.tick() => on(Report::Tick),
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }

    // Interrupted: stop the whole group, politely first.
    if let Some(pgid) = pgid {
        signal_group(pgid, libc::SIGINT);
        if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
            signal_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
        }
        // Grandchildren that outlived their parent are in the same group.
        signal_group(pgid, libc::SIGKILL);
    }
    Err(Error::Interrupted)
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: killpg only sends a signal; a stale group id yields ESRCH, which we ignore.
    unsafe {
        libc::killpg(pgid, sig);
    }
}
