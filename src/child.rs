//! Running nix or nh: in its own process group, both pipes streamed line by line to the caller
//! (bytes, decoded lossily, drained until the child exits), stdout kept only when asked and
//! then bounded, Ctrl-C and SIGTERM forwarded to the whole group, always reaped.
//!
//! A child in its own group does not get the terminal's Ctrl-C directly, so no half-handled
//! signal races us: we decide, forward SIGINT to every process of the group (nix, nh, their ssh
//! and build processes), give them a moment, then SIGKILL what is left.

mod invocation;

pub use invocation::{Invocation, LogStream, Results};

use crate::log::{shown, Lines};
use crate::{Error, Result};
use std::future::Future;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
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

/// How long the group gets after SIGINT before SIGKILL (a second Ctrl-C cuts it short).
const GRACE: Duration = Duration::from_secs(3);

/// How long the pipes may stay open after the child exited.
const DRAIN: Duration = Duration::from_secs(2);

/// The longest line handed to the caller: the monitor's ([`crate::log::MAX_LINE`]); the rest
/// of a longer line is dropped and the line marked cut, so a child that never prints a newline
/// cannot make us hold its whole output.
pub use crate::log::MAX_LINE;

/// The most of a child's stdout [`Keep::Stdout`] keeps (`nix build --json` of thousands of
/// installables is far below it); the rest is still read and reported, not kept.
pub const MAX_KEPT: usize = 32 << 20;

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote on stdout, when the caller asked to keep it (at most [`MAX_KEPT`] bytes).
    pub stdout: Vec<u8>,
    /// Whether stdout was longer than [`MAX_KEPT`] and cut.
    pub stdout_cut: bool,
    /// Why the caller's `stop` future ended the child early, if it did.
    pub stopped: Option<String>,
}

/// What to keep of the child's stdout besides reporting it line by line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Nothing (a log, an activation script's chatter).
    Nothing,
    /// Up to [`MAX_KEPT`] bytes (a result the caller parses, e.g. `nix build --json`).
    Stdout,
}

/// What the child run reports to the caller while it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report<'a> {
    /// A line from one of the child's pipes, decoded lossily (invalid UTF-8 becomes U+FFFD).
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

/// Runs `inv`, reporting each line of either pipe as it comes and a tick when
/// nothing came for a while; `keep` says whether stdout is also kept. Returns
/// `Error::Interrupted` after Ctrl-C/SIGTERM once the whole group is gone.
pub async fn run(inv: &Invocation, keep: Keep, on: impl FnMut(Report<'_>)) -> Result<Finished> {
    run_inner(inv, keep, on, std::future::pending(), false).await
}

/// Like [`run`], but the child's group holds the terminal's foreground while it runs, so that a
/// password prompt it shows on `/dev/tty` (nh's sudo) can read the answer instead of stopping
/// on SIGTTIN. Ctrl-C then goes to the child directly; its death by SIGINT is an interruption.
pub async fn run_in_foreground(
    inv: &Invocation,
    keep: Keep,
    on: impl FnMut(Report<'_>),
) -> Result<Finished> {
    use std::os::unix::process::ExitStatusExt;
    let finished = run_inner(inv, keep, on, std::future::pending(), true).await?;
    if finished.status.signal() == Some(libc::SIGINT) || finished.status.code() == Some(130) {
        return Err(Error::Interrupted);
    }
    Ok(finished)
}

/// Like [`run`], and when `stop` resolves first (a watchdog that gave up on a builder), stops
/// the child's whole group as Ctrl-C would and returns with [`Finished::stopped`] set to the
/// reason `stop` gave.
pub async fn run_until(
    inv: &Invocation,
    keep: Keep,
    on: impl FnMut(Report<'_>),
    stop: impl Future<Output = String>,
) -> Result<Finished> {
    run_inner(inv, keep, on, stop, false).await
}

/// Runs `inv` with our terminal (stdin, stdout and stderr ours, in our process group), so a
/// password prompt it shows (`sudo -v`) reaches the person; whether it succeeded.
pub async fn run_on_terminal(inv: &Invocation) -> bool {
    command(inv)
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `inv` with no input and its output dropped, killed when dropped or after `limit`;
/// whether it succeeded in time.
pub async fn succeeds_quietly(inv: &Invocation, limit: Option<Duration>) -> bool {
    let status = command(inv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = match limit {
        Some(limit) => match tokio::time::timeout(limit, status).await {
            Ok(status) => status,
            Err(_) => return false,
        },
        None => status.await,
    };
    status.map(|s| s.success()).unwrap_or(false)
}

/// The command for `inv`: its program, arguments and environment on top of ours.
fn command(inv: &Invocation) -> Command {
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)));
    cmd
}

async fn run_inner(
    inv: &Invocation,
    keep: Keep,
    mut on: impl FnMut(Report<'_>),
    stop: impl Future<Output = String>,
    foreground: bool,
) -> Result<Finished> {
    let name = inv.program.to_string_lossy().into_owned();
    let mut cmd = command(inv);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // Listening before the child is ours: a Ctrl-C between the two would otherwise reach
    // neither this loop nor `interrupted_between_children`, and be lost.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("listening for Ctrl-C", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("listening for SIGTERM", e))?;
    let _running = Running::start();
    let mut child = cmd.spawn().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => {
            Error::input(format!("{name} is not on PATH: install it or fix PATH"))
        }
        _ => Error::io(format!("starting {name}"), err),
    })?;
    // Dropped on every way out (an error, our caller dropped): the whole group goes with it.
    let group = Group(child.id().map(|id| id as libc::pid_t));
    let _terminal = group.0.filter(|_| foreground).and_then(Foreground::give);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::input("the child's pipes were not set up"));
    };

    let mut out_lines = LineReader::new(stdout);
    if keep == Keep::Stdout {
        out_lines = out_lines.keeping();
    }
    let mut err_lines = LineReader::new(stderr);
    let mut stderr_open = true;
    let mut stdout_open = true;
    let mut exited: Option<ExitStatus> = None;
    // Why we are stopping the group: Ctrl-C/SIGTERM (None) or the caller's `stop` (Some).
    let mut stopping: Option<Option<String>> = None;
    // After the child exits, a grandchild that keeps our pipes open (a lingering ssh master)
    // must not hold us hostage; while stopping, the group gets GRACE before SIGKILL.
    let deadline = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(deadline);
    let mut deadline_armed = false;
    tokio::pin!(stop);
    let mut stop_done = false;

    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let status = loop {
        if let (Some(status), false, false) = (exited, stderr_open, stdout_open) {
            break status;
        }
        tokio::select! {
            line = err_lines.next(), if stderr_open => match line {
                Some((line, cut)) => {
                    if let Some(text) = shown(&line, cut) {
                        on(Report::Line(Pipe::Stderr, &text));
                    }
                }
                None => stderr_open = false,
            },
            line = out_lines.next(), if stdout_open => match line {
                Some((line, cut)) => {
                    if let Some(text) = shown(&line, cut) {
                        on(Report::Line(Pipe::Stdout, &text));
                    }
                }
                None => stdout_open = false,
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some(status.map_err(|e| Error::io(format!("waiting for {name}"), e))?);
                let drain = if stopping.is_some() {
                    // Grandchildren that outlived their parent are in the same group.
                    group.signal(libc::SIGKILL);
                    Duration::from_millis(500)
                } else {
                    DRAIN
                };
                deadline.as_mut().reset(tokio::time::Instant::now() + drain);
                deadline_armed = true;
            }
            _ = &mut deadline, if deadline_armed => {
                match exited {
                    Some(status) => break status,
                    None => {
                        // The grace after SIGINT is over: no more asking.
                        group.signal(libc::SIGKILL);
                        deadline.as_mut().reset(tokio::time::Instant::now() + GRACE);
                    }
                }
            }
            reason = &mut stop, if !stop_done && stopping.is_none() => {
                stop_done = true;
                stopping = Some(Some(reason));
                group.signal(libc::SIGINT);
                deadline.as_mut().reset(tokio::time::Instant::now() + GRACE);
                deadline_armed = true;
            }
            _ = ticks.tick() => on(Report::Tick),
            _ = interrupt.recv() => interrupted(&group, &mut stopping, &mut deadline, &mut deadline_armed),
            _ = terminate.recv() => interrupted(&group, &mut stopping, &mut deadline, &mut deadline_armed),
        }
    };
    if stopping.is_none() {
        // A normal end: what the child left running on purpose is not ours to kill.
        group.forget();
    }
    let (kept, cut) = out_lines.kept();
    match stopping {
        Some(None) => Err(Error::Interrupted),
        Some(Some(reason)) => Ok(Finished {
            status,
            stdout: kept,
            stdout_cut: cut,
            stopped: Some(reason),
        }),
        None => Ok(Finished {
            status,
            stdout: kept,
            stdout_cut: cut,
            stopped: None,
        }),
    }
}

/// Ctrl-C or SIGTERM while a child runs: the first asks the whole group to stop (SIGINT, as the
/// terminal would have), a second one ends it at once (SIGKILL).
fn interrupted(
    group: &Group,
    stopping: &mut Option<Option<String>>,
    deadline: &mut std::pin::Pin<&mut tokio::time::Sleep>,
    armed: &mut bool,
) {
    match stopping {
        Some(None) => group.signal(libc::SIGKILL),
        _ => {
            *stopping = Some(None);
            group.signal(libc::SIGINT);
            deadline.as_mut().reset(tokio::time::Instant::now() + GRACE);
            *armed = true;
        }
    }
}

/// The child's process group; dropping it kills whatever of the group is left.
struct Group(Option<libc::pid_t>);

impl Group {
    fn forget(mut self) {
        self.0 = None;
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, sig);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// How much one read takes from a pipe (as much as a pipe holds on Linux).
const READ_BYTES: usize = 64 * 1024;

/// Reads a pipe as lines of bytes with [`crate::log::Lines`], the splitter `monitor` uses too:
/// never fails on what the bytes are (invalid UTF-8 is the caller's to decode lossily), keeps
/// at most [`MAX_LINE`] of one line (the rest dropped, the line marked cut), and keeps reading
/// until end of file or a read error, so a child never blocks on a full pipe. With
/// [`LineReader::keeping`], the bytes are also kept as they came (up to [`MAX_KEPT`]), long
/// lines whole: `nix build --json`'s one line can be longer than any line shown.
struct LineReader<R> {
    inner: R,
    lines: Lines,
    ready: std::collections::VecDeque<(Vec<u8>, bool)>,
    chunk: Vec<u8>,
    eof: bool,
    kept: Option<Vec<u8>>,
    kept_cut: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R) -> Self {
        LineReader {
            inner,
            lines: Lines::new(MAX_LINE),
            ready: Default::default(),
            chunk: Vec::with_capacity(READ_BYTES),
            eof: false,
            kept: None,
            kept_cut: false,
        }
    }

    /// Also keeps every byte read, up to [`MAX_KEPT`].
    fn keeping(mut self) -> Self {
        self.kept = Some(Vec::new());
        self
    }

    /// The next line without its newline (and `\r`), with whether it was cut, or `None` at the
    /// end. Cancel-safe: a read that did not finish read nothing, and what a finished read
    /// brought is split before the next await.
    async fn next(&mut self) -> Option<(Vec<u8>, bool)> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Some(line);
            }
            if self.eof {
                return None;
            }
            self.chunk.clear();
            match self.inner.read_buf(&mut self.chunk).await {
                Ok(0) => self.eof = true,
                Ok(_) => {
                    if let Some(kept) = &mut self.kept {
                        if kept.len() + self.chunk.len() <= MAX_KEPT {
                            kept.extend_from_slice(&self.chunk);
                        } else {
                            self.kept_cut = true;
                        }
                    }
                    self.lines.push(&self.chunk);
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                // A broken pipe is its end: report what is left, then stop.
                Err(_) => self.eof = true,
            }
            if self.eof {
                self.lines.finish();
            }
            for (line, cut) in self.lines.take().lines() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                self.ready.push_back((line.to_vec(), cut));
            }
        }
    }

    /// What [`LineReader::keeping`] kept, and whether some of it was left out.
    fn kept(&mut self) -> (Vec<u8>, bool) {
        (self.kept.take().unwrap_or_default(), self.kept_cut)
    }
}

/// A guard for a child awaited elsewhere (nix's evaluation, store queries): dropped while the
/// child still runs (the run was interrupted), it asks the child to stop with SIGTERM, as
/// Ctrl-C would, and gives it [`GRACE`] before SIGKILL. A plain SIGKILL would leave what nix
/// started in sessions of their own running (the builder of an import-from-derivation).
#[derive(Debug)]
pub struct StopOnDrop(Option<libc::pid_t>);

impl StopOnDrop {
    /// Guards the process `pid` (None: nothing to guard).
    pub fn new(pid: Option<u32>) -> StopOnDrop {
        StopOnDrop(pid.map(|p| p as libc::pid_t))
    }

    /// The child ended normally: nothing to stop.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let Some(pid) = self.0 else { return };
        // SAFETY: kill only sends a signal; our unreaped child's pid cannot be reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = std::time::Instant::now();
        while !exited(pid) {
            if t0.elapsed() > GRACE {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Whether our child `pid` has exited (gone, or a zombie waiting to be reaped).
fn exited(pid: libc::pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: killpg only sends a signal; a stale group id yields ESRCH, which we ignore.
    unsafe {
        libc::killpg(pgid, sig);
    }
}

/// The terminal's foreground, lent to a child's process group; given back on drop. SIGTTOU is
/// ignored meanwhile, as shells do, so that we may take it back (and write) from the background.
struct Foreground {
    tty: std::fs::File,
    ours: libc::pid_t,
    old_ttou: libc::sighandler_t,
}

impl Foreground {
    fn give(pgid: libc::pid_t) -> Option<Foreground> {
        use std::os::fd::AsRawFd;
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        // SAFETY: plain syscalls on a descriptor we own; the old handler is restored on drop.
        unsafe {
            let ours = libc::getpgrp();
            if libc::tcgetpgrp(tty.as_raw_fd()) != ours {
                return None; // we are not in the foreground ourselves: nothing to lend
            }
            let old_ttou = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            if libc::tcsetpgrp(tty.as_raw_fd(), pgid) != 0 {
                libc::signal(libc::SIGTTOU, old_ttou);
                return None;
            }
            Some(Foreground {
                tty,
                ours,
                old_ttou,
            })
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `give`.
        unsafe {
            libc::tcsetpgrp(self.tty.as_raw_fd(), self.ours);
            libc::signal(libc::SIGTTOU, self.old_ttou);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(script: &str) -> Invocation {
        Invocation::plain("/bin/sh", vec!["-c".into(), script.into()])
    }

    #[tokio::test]
    async fn lines_are_bytes_cut_at_the_limit_and_the_last_one_kept() {
        let mut input = b"caf\xe9\r\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 10]);
        input.extend(b"\nno newline at the end");
        let mut lines = LineReader::new(&input[..]);
        assert_eq!(lines.next().await, Some((b"caf\xe9".to_vec(), false)));
        // The monitor's rule: the line keeps its first MAX_LINE bytes and is marked cut.
        assert_eq!(
            lines.next().await.map(|(l, cut)| (l.len(), cut)),
            Some((MAX_LINE, true))
        );
        assert_eq!(
            lines.next().await,
            Some((b"no newline at the end".to_vec(), false))
        );
        assert_eq!(lines.next().await, None);
    }

    #[tokio::test]
    async fn kept_bytes_are_the_stream_as_it_came_long_lines_whole() {
        let mut input = vec![b'{'; MAX_LINE * 2];
        input.extend(b"}\r\nnext\n");
        let mut lines = LineReader::new(&input[..]).keeping();
        while lines.next().await.is_some() {}
        assert_eq!(lines.kept(), (input, false));
    }

    #[tokio::test]
    async fn invalid_utf8_and_a_flood_of_lines_are_drained_to_the_end() {
        let script = "printf 'caf\\351\\n'; i=0; while [ $i -lt 20000 ]; do echo line $i; echo err $i >&2; i=$((i + 1)); done";
        let mut out = Vec::new();
        let mut errs = 0;
        let argv = argv(script);
        let run = run(&argv, Keep::Nothing, |r| match r {
            Report::Line(Pipe::Stdout, l) => out.push(l.to_owned()),
            Report::Line(Pipe::Stderr, _) => errs += 1,
            Report::Tick => {}
        });
        let finished = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("the child was not drained"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(finished.status.success());
        assert!(finished.stdout.is_empty(), "Keep::Nothing keeps nothing");
        assert_eq!(out.len(), 20001);
        assert_eq!(out[0], "caf\u{FFFD}");
        assert_eq!(out[20000], "line 19999");
        assert_eq!(errs, 20000);
    }

    #[tokio::test]
    async fn stdout_is_kept_when_asked() {
        let finished = run(&argv("echo one; echo two"), Keep::Stdout, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(finished.stdout, b"one\ntwo\n");
        assert!(!finished.stdout_cut);
    }

    #[tokio::test]
    async fn a_stop_ends_the_whole_group_with_the_reason() {
        let stop = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "builder gone".to_owned()
        };
        // The grandchild ignores SIGINT: it needs the SIGKILL after the grace.
        let argv = argv("(trap '' INT; exec /bin/sleep 600) & /bin/sleep 600");
        let run = run_until(&argv, Keep::Nothing, |_| {}, stop);
        let finished = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .unwrap_or_else(|_| panic!("the stop was not honoured"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(finished.stopped.as_deref(), Some("builder gone"));
        assert!(!finished.status.success());
    }
}
